// Two arguments name a pool and neither is marked: which one runs the transaction?
use diesel_async::AsyncPgConnection;

type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;

#[threadline::audited_action("post_created")]
async fn create_post(
    primary: actix_web::web::Data<DbPool>,
    replica: actix_web::web::Data<DbPool>,
    ctx: actix_web::web::ReqData<threadline::AuditContext>,
    conn: &mut AsyncPgConnection,
) -> Result<actix_web::HttpResponse, actix_web::Error> {
    Ok(actix_web::HttpResponse::Created().finish())
}

fn main() {}
