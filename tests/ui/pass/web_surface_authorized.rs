// Either explicit choice builds a surface that mounts in the host's scope.
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use threadline::ActorRef;
use threadline::read::Restriction;
use threadline_web::{AuditSurface, Denial, Operator};

fn mount(pool: Pool<AsyncPgConnection>) {
    let authorized = AuditSurface::builder(pool.clone())
        .authorize(|_req| Err(Denial::Forbidden))
        .build();
    let demo = AuditSurface::builder(pool)
        .unauthenticated_i_accept_the_risk(Operator::new(ActorRef::anonymous(), Restriction::unrestricted()))
        .build();
    let _ = actix_web::App::new()
        .service(actix_web::web::scope("/audit").configure(|cfg| authorized.configure(cfg)))
        .service(actix_web::web::scope("/demo-audit").configure(|cfg| demo.configure(cfg)));
}

fn main() {}
