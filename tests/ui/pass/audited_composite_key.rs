// A composite key: `history` takes the key fields as a tuple, in key order.
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

diesel::table! {
    memberships (org, member) {
        org -> Text,
        member -> BigInt,
        role -> Text,
    }
}

#[derive(Queryable, Selectable, Identifiable, Audited)]
#[diesel(table_name = memberships, primary_key(org, member))]
pub struct Membership {
    pub org: String,
    pub member: i64,
    pub role: String,
}

// Never run: it only has to type-check.
#[allow(dead_code)]
async fn roles_of_a_member(conn: &mut diesel_async::AsyncPgConnection) -> Result<Vec<String>, threadline::Error> {
    let page = Membership::history(conn, ("acme".to_string(), 5)).await?;
    Ok(page
        .entries
        .into_iter()
        .filter_map(|version| version.row)
        .filter_map(|row| row.role.into_value())
        .collect())
}

fn main() {
    let key: <Membership as Audited>::Key = ("acme".to_string(), 5);
    let _ = Membership::row_key(&key);
    assert!(Membership::POLICY_JSON.contains(r#""primary_key":["org","member"]"#));
}
