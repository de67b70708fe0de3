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

// Without #[diesel(table_name = ...)], the table is Diesel's default: `accounts`.
#[derive(Queryable, Audited)]
pub struct Account {
    pub id: i64,
    pub email: String,
}

fn main() {}
