// Fields renamed with #[diesel(column_name = ...)]: the policy names columns, not fields.
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

#[derive(Queryable, Selectable, Audited)]
#[diesel(table_name = users)]
#[audited(schema = "app", mask_placeholder = "***", changed_from = false, mask(email))]
pub struct Account {
    pub id: i64,
    #[diesel(column_name = email)]
    pub contact: String,
    #[diesel(column_name = "updated_at")]
    pub touched_at: chrono::DateTime<chrono::Utc>,
}

fn main() {
    assert_eq!((Account::SCHEMA, Account::TABLE), ("app", "users"));
    assert_eq!(
        Account::POLICY_JSON,
        r#"{"exclude":[],"mask":["email"],"mask_placeholder":"***","ignore_changes":[],"primary_key":["id"],"changed_from":false}"#
    );
    assert_eq!(Account::table().to_string(), "app.users");
}
