//! The `/audit` operator surface: read-only web pages that answer "what changed, when, by
//! whom" for support staff, mounted in the host's actix-web app.
//!
//! The pages are server-rendered HTML on the same read core as the library and the
//! `threadline` command, so the three give the same answers. They need no inline script or
//! style: every response carries a strict `Content-Security-Policy`, and the URL is the
//! state, so every filtered view can be bookmarked and shared.
//!
//! The surface is closed by construction. [`AuditSurface::builder`] returns a builder that
//! cannot [`build`](Builder::build) until the host says who may open it: an
//! [`authorize`](Builder::authorize) callback that turns a request into an [`Operator`]
//! (an actor, a [`Restriction`](threadline::read::Restriction) of what they may read, and
//! the [`Capability`]s granted), or, for a demo, the explicit
//! [`unauthenticated_i_accept_the_risk`](Builder::unauthenticated_i_accept_the_risk).
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use diesel_async::AsyncPgConnection;
//! use diesel_async::pooled_connection::bb8::Pool;
//! use threadline::ActorRef;
//! use threadline::read::Restriction;
//! use threadline_web::{AuditSurface, Capability, Denial, Operator};
//!
//! # async fn serve(pool: Pool<AsyncPgConnection>) -> std::io::Result<()> {
//! let surface = AuditSurface::builder(pool)
//!     .authorize(|req| {
//!         // The host's own identification: a session, a token, a header set by a proxy.
//!         match req.headers().get("x-staff-id").and_then(|v| v.to_str().ok()) {
//!             Some(id) => Ok(Operator::new(ActorRef::admin(id).map_err(|_| Denial::Forbidden)?, Restriction::unrestricted())
//!                 .grant(Capability::Export)),
//!             None => Err(Denial::Forbidden),
//!         }
//!     })
//!     .build();
//! HttpServer::new(move || App::new().service(web::scope("/audit").configure(|cfg| surface.configure(cfg))))
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! # }
//! ```

mod access;
mod csrf;
mod error;
mod export;
mod governance;
mod headers;
mod investigate;
mod page;
mod params;
mod views;

use std::sync::Arc;

use actix_web::web::{self, ServiceConfig};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use threadline::health::HealthCheck;
use threadline::jobs::ExportJobs;
use threadline::policy::PolicyCheck;
use threadline::retention::Purge;

pub use access::{Access, AuthorizeFn, Authorized, CAPABILITIES, Capability, Denial, Operator, Unauthorized};
pub use error::PageError;
pub use headers::CONTENT_SECURITY_POLICY;

/// The rows a direct export writes at most, unless [`Builder::export_row_cap`] says
/// otherwise.
pub const DEFAULT_EXPORT_ROW_CAP: u64 = 100_000;

/// The changes a timeline page shows.
pub const TIMELINE_PAGE_SIZE: usize = 50;

/// The count a timeline page stops at: past it, the page says "more than 10 000".
pub const COUNT_CAP: u64 = 10_000;

/// Makes one route: its method and handler.
type RouteFn = fn() -> actix_web::Route;

/// Every route of the surface, relative to its mount, with its method and handler.
pub(crate) const ROUTES: &[(&str, RouteFn)] = &[
    ("", || web::get().to(investigate::to_home)),
    ("/", || web::get().to(investigate::home)),
    ("/timeline", || web::get().to(investigate::timeline)),
    ("/transactions/{id}", || web::get().to(investigate::transaction)),
    ("/rows", || web::get().to(investigate::row)),
    ("/actors", || web::get().to(investigate::actor)),
    ("/correlations", || web::get().to(investigate::correlation)),
    ("/export", || web::get().to(export::direct)),
    ("/exports", || web::get().to(export::jobs)),
    ("/exports/request", || web::post().to(export::request)),
    ("/exports/{id}/download", || web::get().to(export::download)),
    ("/views", || web::get().to(views::list)),
    ("/views/save", || web::post().to(views::save)),
    ("/views/delete", || web::post().to(views::delete)),
    ("/coverage", || web::get().to(governance::coverage)),
    ("/policy", || web::get().to(governance::policy)),
    ("/retention", || web::get().to(governance::retention)),
    ("/retention/prune", || web::post().to(governance::prune)),
    ("/evidence", || web::get().to(governance::evidence)),
    ("/static/threadline.css", || web::get().to(page::stylesheet)),
    ("/static/threadline.js", || web::get().to(page::script)),
];

/// Builds an [`AuditSurface`]. Made by [`AuditSurface::builder`]; `A` records whether the
/// host said who may open it.
pub struct Builder<A> {
    pool: Pool<AsyncPgConnection>,
    access: A,
    health: HealthCheck,
    policy: PolicyCheck,
    retention: Option<(String, Purge)>,
    jobs: Option<ExportJobs>,
    export_row_cap: u64,
    csrf_key: Option<[u8; 32]>,
}

impl<A> std::fmt::Debug for Builder<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").finish_non_exhaustive()
    }
}

impl Builder<Unauthorized> {
    /// Opens the surface to the requests `authorize` accepts. It runs on every request
    /// (page, download, form post) and returns the [`Operator`] the request acts as, or a
    /// [`Denial`]: a 403 page, or a redirect to the host's sign-in.
    pub fn authorize(
        self,
        authorize: impl Fn(&actix_web::HttpRequest) -> Result<Operator, Denial> + Send + Sync + 'static,
    ) -> Builder<Authorized> {
        self.with_access(Authorized(Arc::new(authorize)))
    }

    /// Opens the surface to every request, all acting as `operator`. For a demo on a
    /// trusted network only: anyone who reaches the mount reads the trail.
    pub fn unauthenticated_i_accept_the_risk(self, operator: Operator) -> Builder<Authorized> {
        tracing::warn!(
            target: "threadline::web",
            "the audit surface is mounted without authorization: every request reads as one operator"
        );
        self.with_access(Authorized(Arc::new(move |_: &actix_web::HttpRequest| {
            Ok(operator.clone())
        })))
    }

    fn with_access(self, access: Authorized) -> Builder<Authorized> {
        Builder {
            pool: self.pool,
            access,
            health: self.health,
            policy: self.policy,
            retention: self.retention,
            jobs: self.jobs,
            export_row_cap: self.export_row_cap,
            csrf_key: self.csrf_key,
        }
    }
}

impl<A> Builder<A> {
    /// The check the coverage screen and the home page's chip run (default: the `public`
    /// schema).
    pub fn health(mut self, check: HealthCheck) -> Self {
        self.health = check;
        self
    }

    /// The declared policies the policy screen compares with the database, such as
    /// `PolicyCheck::new().declare_model::<Post>()`.
    pub fn policy(mut self, check: PolicyCheck) -> Self {
        self.policy = check;
        self
    }

    /// The purge "prune now" starts, and the policy name an operator types to confirm it.
    /// Without it the retention screen lists runs and offers no prune. The pool's role
    /// must be allowed to purge (the installing role).
    pub fn retention(mut self, name: impl Into<String>, purge: Purge) -> Self {
        self.retention = Some((name.into(), purge));
        self
    }

    /// The background export queue the exports screen submits to and downloads from.
    pub fn jobs(mut self, jobs: ExportJobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// The most rows one direct export writes (default [`DEFAULT_EXPORT_ROW_CAP`]).
    pub fn export_row_cap(mut self, rows: u64) -> Self {
        self.export_row_cap = rows.max(1);
        self
    }

    /// The key CSRF tokens are signed with. By default a random key is drawn when the
    /// surface is built, so tokens do not survive a restart and differ between app
    /// instances: behind a load balancer without sticky sessions, give every instance the
    /// same secret key.
    pub fn csrf_key(mut self, key: [u8; 32]) -> Self {
        self.csrf_key = Some(key);
        self
    }

    /// The surface, ready to [`configure`](AuditSurface::configure) into a scope.
    pub fn build(self) -> AuditSurface
    where
        A: Access,
    {
        let key = self.csrf_key.unwrap_or_else(csrf::random_key);
        AuditSurface(Arc::new(Surface {
            pool: self.pool,
            authorize: self.access.callback(),
            health: self.health,
            policy: self.policy,
            retention: self.retention,
            jobs: self.jobs,
            export_row_cap: self.export_row_cap,
            csrf: csrf::Csrf::new(key),
        }))
    }
}

/// The operator surface, built once and configured into the host's scope (in every
/// worker's `App`: it is cheap to clone).
#[derive(Clone)]
pub struct AuditSurface(Arc<Surface>);

impl std::fmt::Debug for AuditSurface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSurface").finish_non_exhaustive()
    }
}

/// What every handler reads.
pub(crate) struct Surface {
    pub(crate) pool: Pool<AsyncPgConnection>,
    pub(crate) authorize: Arc<AuthorizeFn>,
    pub(crate) health: HealthCheck,
    pub(crate) policy: PolicyCheck,
    pub(crate) retention: Option<(String, Purge)>,
    pub(crate) jobs: Option<ExportJobs>,
    pub(crate) export_row_cap: u64,
    pub(crate) csrf: csrf::Csrf,
}

impl Surface {
    /// A connection of the pool, or the 503 page.
    pub(crate) async fn conn(&self) -> Result<PooledConnection<'_, AsyncPgConnection>, PageError> {
        self.pool.get().await.map_err(|_| PageError::Unavailable)
    }
}

impl AuditSurface {
    /// A builder on `pool`, closed until [`Builder::authorize`] or
    /// [`Builder::unauthenticated_i_accept_the_risk`] says who may open it.
    pub fn builder(pool: Pool<AsyncPgConnection>) -> Builder<Unauthorized> {
        Builder {
            pool,
            access: Unauthorized,
            health: HealthCheck::new(),
            policy: PolicyCheck::new(),
            retention: None,
            jobs: None,
            export_row_cap: DEFAULT_EXPORT_ROW_CAP,
            csrf_key: None,
        }
    }

    /// Registers the surface's routes in `cfg`, the host's scope:
    /// `web::scope("/audit").configure(|cfg| surface.configure(cfg))`. Every route
    /// answers with the security headers; see the README for the route table.
    pub fn configure(&self, cfg: &mut ServiceConfig) {
        cfg.app_data(web::Data::from(self.0.clone()));
        for (path, route) in ROUTES {
            cfg.service(web::resource(*path).wrap(headers::security()).route(route()));
        }
    }
}
