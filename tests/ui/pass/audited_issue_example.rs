// The example of the issue: `password_hash` is excluded but is not a field (secrets need
// not be loaded to be kept out of the trail); the column checks still find it in `table!`.
use diesel::prelude::*;
use threadline::Audited;

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        updated_at -> Timestamptz,
    }
}

#[derive(Queryable, Selectable, Identifiable, Audited)]
#[diesel(table_name = users)]
#[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]
pub struct User {
    pub id: i64,
    pub email: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn main() {
    assert_eq!((User::SCHEMA, User::TABLE), ("public", "users"));
    assert_eq!(
        User::POLICY_JSON,
        r#"{"exclude":["password_hash"],"mask":["email"],"mask_placeholder":"[REDACTED]","ignore_changes":["updated_at"],"primary_key":["id"],"changed_from":true}"#
    );
    assert!(User::MIGRATION_UP.contains("SELECT threadline.audit_table('\"public\".\"users\"'"));
    let _query = users::table
        .select(User::as_select())
        .filter(users::id.eq(42))
        .into_boxed::<diesel::pg::Pg>();
}
