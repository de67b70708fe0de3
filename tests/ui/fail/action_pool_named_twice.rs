// The pool is named by the option and by the marker: one way is enough.
use diesel_async::AsyncPgConnection;

type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;

#[threadline::audited_action("post_created", pool = db)]
async fn create_post(
    #[audit_pool] db: actix_web::web::Data<DbPool>,
    ctx: actix_web::web::ReqData<threadline::AuditContext>,
    conn: &mut AsyncPgConnection,
) -> Result<actix_web::HttpResponse, actix_web::Error> {
    Ok(actix_web::HttpResponse::Created().finish())
}

fn main() {}
