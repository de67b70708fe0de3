// A mistake in the attribute is the only error: the fn is still there, with the signature
// the expansion gives it (no connection parameter, no `#[audit_context]` marker), so the
// route that names it does not fail too.
use diesel_async::AsyncPgConnection;

type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;

#[threadline::audited_action("Post Created")]
async fn create_post(
    pool: actix_web::web::Data<DbPool>,
    #[audit_context] ctx: actix_web::web::ReqData<threadline::AuditContext>,
    conn: &mut AsyncPgConnection,
) -> Result<actix_web::HttpResponse, actix_web::Error> {
    let _ = conn;
    Ok(actix_web::HttpResponse::Created().finish())
}

fn main() {
    let _app = actix_web::App::new().route("/posts", actix_web::web::post().to(create_post));
}
