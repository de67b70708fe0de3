//! Load on the blog example over a real socket: `POST /posts` (an `#[audited_action]`
//! handler) at a fixed concurrency, with capture of `posts` on, then off
//! (`threadline.unaudit_table`), everything else the same. Prints requests per second,
//! p50 and p99 latency, errors, and the audited/unaudited throughput ratio.
//!
//! ```sh
//! cargo bench --bench load                      # 16 connections, 5 s a phase
//! LOAD_CONNECTIONS=32 LOAD_SECONDS=10 cargo bench --bench load
//! ```
//!
//! Loopback only; each phase stops by itself after its time.

#[path = "../examples/blog/app.rs"]
#[allow(dead_code)]
mod app;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::HttpServer;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use threadline::testing::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One phase's figures.
struct Phase {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}

/// Sends `POST /posts` on one keep-alive connection until `end`; returns latencies and
/// the count of answers other than 201.
async fn client(address: SocketAddr, user: u64, end: Instant) -> (Vec<Duration>, u64) {
    let mut stream = TcpStream::connect(address).await.expect("connect to the example");
    let body = r#"{"title": "load", "body": "a post written under load"}"#;
    let request = format!(
        "POST /posts HTTP/1.1\r\nHost: localhost\r\nx-user-id: {user}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (mut latencies, mut errors) = (Vec::new(), 0);
    let mut buffer = Vec::with_capacity(4096);
    while Instant::now() < end {
        let started = Instant::now();
        stream.write_all(request.as_bytes()).await.expect("send");
        buffer.clear();
        let (status, length, head_end) = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("receive");
            assert!(n > 0, "the server closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..at]).to_ascii_lowercase();
                let status = head.split(' ').nth(1).unwrap_or("").to_owned();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (status, length, at + 4);
            }
        };
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("receive");
            assert!(n > 0, "the server closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
        }
        latencies.push(started.elapsed());
        if status != "201" {
            errors += 1;
        }
    }
    (latencies, errors)
}

async fn phase(address: SocketAddr, connections: u64, seconds: u64) -> Phase {
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..connections)
        .map(|n| tokio::spawn(client(address, 1 + n % 3, end)))
        .collect();
    let mut result = Phase {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies: Vec::new(),
    };
    for handle in clients {
        let (latencies, errors) = handle.await.expect("client task");
        result.requests += latencies.len() as u64;
        result.errors += errors;
        result.latencies.extend(latencies);
    }
    result.seconds = started.elapsed().as_secs_f64();
    result
}

fn report(name: &str, phase: &Phase) {
    println!(
        "{name:>10}: {:>7.0} requests/s, p50 {:>6.2} ms, p99 {:>6.2} ms, {} errors of {} requests",
        phase.per_second(),
        phase.percentile(0.50).as_secs_f64() * 1e3,
        phase.percentile(0.99).as_secs_f64() * 1e3,
        phase.errors,
        phase.requests
    );
}

fn main() {
    let connections = setting("LOAD_CONNECTIONS", 16);
    let seconds = setting("LOAD_SECONDS", 5);
    let db = TestDatabase::empty().expect("test database");
    app::run_migrations(db.url()).expect("the example's migrations");
    let url = db.url().to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let pool = app::pool(&url).await.expect("pool");
            let server = HttpServer::new(move || app::app(pool.clone()))
                .workers(2)
                .bind(("127.0.0.1", 0))
                .expect("bind");
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.expect("serve");
        })
    });
    let address = rx.recv().expect("the server's address");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!("POST /posts over {connections} keep-alive connections, {seconds} s a phase, on {address}");
    runtime.block_on(phase(address, connections, 1));
    let audited = runtime.block_on(phase(address, connections, seconds));
    PgConnection::establish(db.url())
        .unwrap()
        .batch_execute("SELECT threadline.unaudit_table('posts')")
        .unwrap();
    let unaudited = runtime.block_on(phase(address, connections, seconds));
    report("audited", &audited);
    report("unaudited", &unaudited);
    println!(
        "ratio audited/unaudited: throughput {:.2}, p99 latency {:.2}",
        audited.per_second() / unaudited.per_second(),
        audited.percentile(0.99).as_secs_f64() / unaudited.percentile(0.99).as_secs_f64()
    );
    assert_eq!(audited.errors + unaudited.errors, 0, "every request must succeed");
}
