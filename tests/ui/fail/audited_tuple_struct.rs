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
pub struct User(pub i64, pub String);

fn main() {}
