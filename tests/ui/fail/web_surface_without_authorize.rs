// The audit surface cannot be built, let alone mounted, until the host says who may open it.
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use threadline_web::AuditSurface;

fn mount(pool: Pool<AsyncPgConnection>) {
    let surface = AuditSurface::builder(pool).build();
    let _ = actix_web::App::new().service(actix_web::web::scope("/audit").configure(|cfg| surface.configure(cfg)));
}

fn main() {}
