// A mistake in the attribute is the only error: the fn is still there for the code that
// names it (here a route, with an `#[audit_context]` marker the fallback drops), so the
// mistake does not cascade into "cannot find value `create_post`".
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
    let _handler = create_post;
}
