// A builder is not a surface: only a built one configures routes.
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use threadline_web::AuditSurface;

fn mount(pool: Pool<AsyncPgConnection>) {
    let builder = AuditSurface::builder(pool);
    let _ = actix_web::App::new().service(actix_web::web::scope("/audit").configure(|cfg| builder.configure(cfg)));
}

fn main() {}
