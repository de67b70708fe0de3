// The generated `UserSnapshot`: one `threadline::model::Field` per field, decoded from a
// captured row image with the redaction its change recorded, and `into_model()` when every
// field held a stored value.
use diesel::prelude::*;
use threadline::Audited;
use threadline::model::{CapturedRow, Field, Snapshot};

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        updated_at -> Timestamptz,
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Audited)]
#[diesel(table_name = users)]
#[audited(mask(email), exclude(password_hash))]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
}

fn decode(image: serde_json::Value, masked: &[&str], excluded: &[&str]) -> UserSnapshot {
    let serde_json::Value::Object(data) = image else {
        unreachable!()
    };
    let masked: Vec<String> = masked.iter().map(|c| c.to_string()).collect();
    let excluded: Vec<String> = excluded.iter().map(|c| c.to_string()).collect();
    UserSnapshot::decode(&CapturedRow {
        data: &data,
        masked: &masked,
        excluded: &excluded,
    })
    .expect("decodes")
}

fn main() {
    let snapshot: <User as Audited>::Snapshot = decode(
        serde_json::json!({"id": 7, "email": "[REDACTED]"}),
        &["email"],
        &["password_hash"],
    );
    let id: &Field<i64> = &snapshot.id;
    assert_eq!(id.value(), Some(&7));
    assert_eq!(snapshot.email, Field::Masked);
    assert_eq!(snapshot.password_hash, Field::Excluded);
    assert_eq!(snapshot.clone().into_model(), None);
    assert_eq!(
        serde_json::to_value(&snapshot).unwrap(),
        serde_json::json!({"id": 7, "email": {"masked": true}, "password_hash": {"excluded": true}})
    );

    let whole = UserSnapshot {
        id: Field::Value(7),
        email: Field::Value("ada@example.com".to_string()),
        password_hash: Field::Value("x".to_string()),
    };
    let user: Option<User> = whole.into_model();
    assert_eq!(user.map(|u| u.email), Some("ada@example.com".to_string()));

    let missing = decode(serde_json::json!({"id": 7}), &[], &["password_hash"]);
    assert_eq!(missing.email, Field::Absent);

    // What the change recorded decides, not the model's annotation: captured before email
    // was masked, it is a value; a placeholder is never decoded as one.
    let earlier = decode(
        serde_json::json!({"id": 7, "email": "ada@example.com", "password_hash": "x"}),
        &[],
        &[],
    );
    assert_eq!(earlier.email, Field::Value("ada@example.com".to_string()));
    assert_eq!(earlier.password_hash, Field::Value("x".to_string()));
}
