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

#[derive(Queryable, Audited)]
#[audited(masks(email))]
pub struct User {
    pub id: i64,
    pub email: String,
}

fn main() {}
