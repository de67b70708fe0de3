//! The blog example through PgBouncer in transaction mode, configured as the README says:
//! many users' requests at once over a few server connections, each change attributed to
//! the user whose request made it.

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use futures_util::future::join_all;
use serde_json::json;
use threadline::testing::TestDatabase;

use crate::support::bouncer::Bouncer;
use crate::support::{changes_of, transactions};
use crate::{answer, app, as_user, create, user};

#[actix_web::test]
async fn the_example_works_through_pgbouncer_in_transaction_mode() {
    let db = TestDatabase::empty().expect("test database");
    app::run_migrations(db.url()).expect("migrations");
    let bouncer = Bouncer::start(db.url());
    let pool = app::pool_behind_transaction_pooler(&bouncer.url(db.url()))
        .await
        .expect("a pool through PgBouncer");
    let service = test::init_service(app::app(pool)).await;

    let requests = (0..30u32).map(|n| {
        let (service, bouncer) = (&service, &bouncer);
        async move {
            let author = 1 + n % 3;
            let created = answer(
                service
                    .call(create(author, &format!("post {n}"), "b").to_request())
                    .await,
            )
            .await;
            assert_eq!(
                created.status,
                StatusCode::CREATED,
                "{created:?}\npgbouncer: {}",
                bouncer.log()
            );
            let id = created.body["id"].as_i64().unwrap();
            let editor = 1 + (n + 1) % 3;
            let patch = as_user(TestRequest::patch().uri(&format!("/posts/{id}")), editor)
                .set_json(json!({"title": format!("edited {n}")}));
            let edited = answer(service.call(patch.to_request()).await).await;
            assert_eq!(
                edited.status,
                StatusCode::OK,
                "{edited:?}\npgbouncer: {}",
                bouncer.log()
            );
            let history = TestRequest::get().uri(&format!("/posts/{id}/history"));
            let read = answer(service.call(history.to_request()).await).await;
            assert_eq!(read.status, StatusCode::OK, "{read:?}\npgbouncer: {}", bouncer.log());
            (id, author, editor)
        }
    });
    let written = join_all(requests).await;

    let mut admin = db.connect().unwrap();
    let txs = transactions(&mut admin);
    let changes = changes_of(&mut admin, "posts");
    assert_eq!(changes.len(), 60, "an insert and an update per post");
    for (id, author, editor) in written {
        let key = id.to_string();
        let of_post: Vec<_> = changes
            .iter()
            .filter(|c| c.table_pk["id"] == key.as_str())
            .map(|c| {
                let tx = txs.iter().find(|t| t.id == c.transaction_id).unwrap();
                (c.op.as_str(), tx.actor.clone())
            })
            .collect();
        assert_eq!(
            of_post,
            [("insert", Some(user(author))), ("update", Some(user(editor)))],
            "post {id}"
        );
    }
}
