// A `web::Data` of the app's own beside the pool is an ordinary parameter: the pool is the
// one whose type names a pool, or the one marked #[audit_pool].
use diesel_async::AsyncPgConnection;

type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;
type Shared = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;

struct Config {
    greeting: String,
}

#[threadline::audited_action("post_created")]
async fn create_post(
    config: actix_web::web::Data<Config>,
    pool: actix_web::web::Data<DbPool>,
    ctx: actix_web::web::ReqData<threadline::AuditContext>,
    conn: &mut AsyncPgConnection,
) -> Result<String, threadline::Error> {
    let _ = conn;
    Ok(config.greeting.clone())
}

#[threadline::audited_action("post_archived")]
async fn archive_post(
    #[audit_pool] primary: actix_web::web::Data<Shared>,
    replica: actix_web::web::Data<DbPool>,
    ctx: actix_web::web::ReqData<threadline::AuditContext>,
    conn: &mut AsyncPgConnection,
) -> Result<usize, threadline::Error> {
    let _ = (conn, replica.state());
    Ok(0)
}

fn main() {
    let _ = (create_post, archive_post);
}
