use diesel::prelude::*;
use threadline::Audited;

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
    }
}

#[derive(Queryable, Audited)]
#[diesel(table_name = users)]
#[audited(schema = "")]
pub struct User {
    pub id: i64,
    pub email: String,
}

fn main() {}
