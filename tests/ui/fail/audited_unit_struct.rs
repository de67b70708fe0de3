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

#[derive(Audited)]
pub struct User;

fn main() {
    let _ = users::table.select(users::email);
}
