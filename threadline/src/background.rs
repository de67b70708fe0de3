//! A task on the app's tokio runtime that does one round of work, waits, and does it again
//! until stopped: what the retention [`Pruner`](crate::retention::Pruner) and the
//! [`ExportWorker`](crate::jobs) are made of.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether the task was asked to stop; a round checks it between its steps.
#[derive(Debug, Clone)]
pub(crate) struct Stopping(Arc<AtomicBool>);

impl Stopping {
    pub(crate) fn asked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A running task.
#[derive(Debug)]
pub(crate) struct Background {
    stopping: Stopping,
    wake: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Runs `round` at once, then `every` after each round ends, until [`Background::stop`].
    pub(crate) fn start<F, R>(every: Duration, mut round: F) -> Self
    where
        F: FnMut(Stopping) -> R + Send + 'static,
        R: Future<Output = ()> + Send,
    {
        let stopping = Stopping(Arc::new(AtomicBool::new(false)));
        let wake = Arc::new(tokio::sync::Notify::new());
        let (stop, woken) = (stopping.clone(), wake.clone());
        let task = tokio::spawn(async move {
            while !stop.asked() {
                round(stop.clone()).await;
                let _ = tokio::time::timeout(every, woken.notified()).await;
            }
        });
        Background { stopping, wake, task }
    }

    /// Asks the task to stop and waits for the round in progress to end.
    pub(crate) async fn stop(self) {
        self.stopping.0.store(true, Ordering::Release);
        self.wake.notify_one();
        let _ = self.task.await;
    }
}
