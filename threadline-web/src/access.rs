//! Who may open the surface, what they see, and what they may do: the operator the host's
//! authorize callback returns, and the capabilities it grants.

use std::fmt;

use actix_web::HttpRequest;
use threadline::ActorRef;
use threadline::read::{Reader, Restriction};

use crate::PageError;

/// A screen or action beyond investigation, denied unless the host grants it.
///
/// The investigation screens (home, timeline, transaction, row history, actor,
/// correlation) and the operator's own saved views need no capability: the [`Restriction`]
/// of the [`Operator`] decides what they show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Download the current filter as CSV, JSON or NDJSON.
    Export,
    /// Queue background exports, follow them and download their files.
    BackgroundExport,
    /// See which tables are audited and what keeps capture from being whole.
    Coverage,
    /// Compare the redaction policies in code with the deployed ones.
    Policy,
    /// See the retention runs.
    RetentionView,
    /// Start a retention run now.
    RetentionPrune,
    /// See the evidence records.
    Evidence,
}

/// Every capability, in the order the denied page and the docs list them.
pub const CAPABILITIES: [Capability; 7] = [
    Capability::Export,
    Capability::BackgroundExport,
    Capability::Coverage,
    Capability::Policy,
    Capability::RetentionView,
    Capability::RetentionPrune,
    Capability::Evidence,
];

impl Capability {
    /// What the capability lets an operator do, as the denied page says it.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::Export => "download the changes of a filter",
            Capability::BackgroundExport => "queue background exports and download them",
            Capability::Coverage => "see which tables are audited",
            Capability::Policy => "compare redaction policies with the database",
            Capability::RetentionView => "see retention runs",
            Capability::RetentionPrune => "start a retention run",
            Capability::Evidence => "see evidence records",
        }
    }

    /// The `threadline` command that answers the same question without the surface.
    pub fn cli(self) -> &'static str {
        match self {
            Capability::Export => "threadline export --format csv --output changes.csv",
            Capability::BackgroundExport => "threadline export-jobs list --owner type:id",
            Capability::Coverage => "threadline health",
            Capability::Policy => "threadline policy show",
            Capability::RetentionView => "threadline retention runs",
            Capability::RetentionPrune => "threadline retention purge --dry-run",
            Capability::Evidence => "threadline evidence show",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Export => "Capability::Export",
            Capability::BackgroundExport => "Capability::BackgroundExport",
            Capability::Coverage => "Capability::Coverage",
            Capability::Policy => "Capability::Policy",
            Capability::RetentionView => "Capability::RetentionView",
            Capability::RetentionPrune => "Capability::RetentionPrune",
            Capability::Evidence => "Capability::Evidence",
        })
    }
}

/// The person at the surface: who they are (recorded as the actor of every write the
/// surface makes), the part of the trail they may read, and their capabilities.
///
/// ```
/// use threadline::ActorRef;
/// use threadline::read::Restriction;
/// use threadline_web::{Capability, Operator};
///
/// let support = Operator::new(ActorRef::user("7")?, Restriction::new().tenant("acme")?)
///     .grant(Capability::Export)
///     .grant(Capability::Coverage);
/// assert!(support.can(Capability::Export));
/// assert!(!support.can(Capability::RetentionPrune));
/// # Ok::<(), threadline::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Operator {
    actor: ActorRef,
    restriction: Restriction,
    granted: Vec<Capability>,
}

impl Operator {
    /// An operator with no capability yet. `restriction` scopes every read of the surface;
    /// pass [`Restriction::unrestricted`] for an operator who may see the whole trail.
    pub fn new(actor: ActorRef, restriction: Restriction) -> Self {
        Operator {
            actor,
            restriction,
            granted: Vec::new(),
        }
    }

    /// Grants one capability.
    pub fn grant(mut self, capability: Capability) -> Self {
        if !self.granted.contains(&capability) {
            self.granted.push(capability);
        }
        self
    }

    /// Grants every capability.
    pub fn grant_all(self) -> Self {
        CAPABILITIES.into_iter().fold(self, Operator::grant)
    }

    /// Whether the operator may use `capability`: it was granted and, for
    /// [`Capability::BackgroundExport`], the operator is unrestricted (the queue's jobs read
    /// the trail without the operator's restriction, so a restricted operator exports from
    /// the timeline's direct download, which applies it).
    pub fn can(&self, capability: Capability) -> bool {
        self.check(capability).is_ok()
    }

    /// [`Operator::can`], with the page that says why not.
    pub(crate) fn check(&self, capability: Capability) -> Result<(), PageError> {
        if !self.granted.contains(&capability) {
            return Err(PageError::Missing(capability));
        }
        if capability == Capability::BackgroundExport && !self.restriction.is_unrestricted() {
            return Err(PageError::BeyondScope(capability));
        }
        Ok(())
    }

    /// The operator's actor.
    pub fn actor(&self) -> &ActorRef {
        &self.actor
    }

    /// The restriction every read of the operator runs under.
    pub(crate) fn restriction(&self) -> &Restriction {
        &self.restriction
    }

    /// A reader under the operator's restriction.
    pub(crate) fn reader(&self) -> Reader {
        let restriction = self.restriction.clone();
        Reader::scoped(move |_| Ok(restriction.clone()))
    }
}

/// Why the authorize callback turned a request away.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// Answer 403 with the surface's "not allowed" page.
    Forbidden,
    /// Answer 303 to this location, such as the host's sign-in page.
    Redirect(String),
}

/// The callback that decides who opens the surface: a request in, an operator or a
/// denial out.
pub type AuthorizeFn = dyn Fn(&HttpRequest) -> Result<Operator, Denial> + Send + Sync;

/// How a builder decides who may open the surface: [`Authorized`] once a choice was made.
/// [`crate::Builder::build`] needs one.
#[diagnostic::on_unimplemented(
    message = "the audit surface is closed until you say who may open it",
    label = "no authorize callback and no unauthenticated switch on this builder",
    note = "call `.authorize(|req| ...)` with a callback that returns an `Operator` or a `Denial`",
    note = "or, for a demo on a trusted network only, `.unauthenticated_i_accept_the_risk(operator)`"
)]
pub trait Access: sealed::Sealed {
    /// The callback.
    #[doc(hidden)]
    fn callback(self) -> std::sync::Arc<AuthorizeFn>;
}

/// A builder that has not yet been told who may open the surface.
#[derive(Debug)]
pub struct Unauthorized;

/// A builder that knows who may open the surface.
pub struct Authorized(pub(crate) std::sync::Arc<AuthorizeFn>);

impl fmt::Debug for Authorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorized(..)")
    }
}

impl Access for Authorized {
    fn callback(self) -> std::sync::Arc<AuthorizeFn> {
        self.0
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Authorized {}
}
