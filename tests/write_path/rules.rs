//! One table of inputs for each validation rule that is written more than once: action
//! names (Rust, the macros' `threadline-syntax`, SQL), labels (Rust, SQL) and actor types
//! (Rust, SQL). Each implementation must give every input the table's verdict.

use diesel::sql_types::Text;
use diesel::{PgConnection, QueryableByName, RunQueryDsl, sql_query};
use threadline::{Action, ActorType, AuditContext};

use crate::support::setup;

#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    done: bool,
}

/// Whether SQL accepts `value` as `$1` of `query`: it runs without error, or is refused by
/// one of Threadline's checks with a message that names `rule`.
fn sql_accepts(conn: &mut PgConnection, query: &str, value: &str, rule: &str) -> bool {
    match sql_query(query).bind::<Text, _>(value).get_result::<Done>(conn) {
        Ok(row) => row.done,
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().starts_with("threadline: ") && info.message().contains(rule) =>
        {
            false
        }
        Err(other) => panic!("{query} with {value:?}: {other}"),
    }
}

fn action_names() -> Vec<(String, bool)> {
    let mut cases: Vec<(String, bool)> = [
        ("post_created", true),
        ("a", true),
        ("export.requested", true),
        ("billing:refund-issued", true),
        ("x0_.:-", true),
        ("", false),
        ("Post_created", false),
        ("1post", false),
        ("_post", false),
        ("post created", false),
        ("post/created", false),
        ("pöst", false),
        ("post\n", false),
    ]
    .into_iter()
    .map(|(name, valid)| (name.to_owned(), valid))
    .collect();
    cases.push(("a".repeat(128), true));
    cases.push(("a".repeat(129), false));
    cases
}

fn labels() -> Vec<(String, bool)> {
    let mut cases: Vec<(String, bool)> = [
        ("req-1", true),
        ("a", true),
        ("with spaces", true),
        ("ünïcödé ✓", true),
        ("\u{a0}no-break space", true),
        ("zero\u{200b}width", true),
        ("", false),
        ("line\nbreak", false),
        ("tab\there", false),
        ("delete\u{7f}", false),
        ("next line\u{85}", false),
        ("c1\u{9f}", false),
    ]
    .into_iter()
    .map(|(label, valid)| (label.to_owned(), valid))
    .collect();
    cases.push(("x".repeat(256), true));
    cases.push(("é".repeat(128), true));
    cases.push(("x".repeat(257), false));
    cases.push((format!("{}x", "é".repeat(128)), false));
    cases
}

const ACTOR_TYPES: [(&str, bool); 10] = [
    ("user", true),
    ("admin", true),
    ("service_account", true),
    ("job", true),
    ("system", true),
    ("anonymous", true),
    ("User", false),
    ("service-account", false),
    ("robot", false),
    ("", false),
];

const RECORD_NAMED: &str = r#"SELECT threadline.record_action(jsonb_build_object(
    'name', $1::text, 'actor', '{"type": "system", "id": "rules"}'::jsonb)) IS NOT NULL AS done"#;

#[test]
fn action_names_follow_one_table_in_rust_the_macros_and_sql() {
    let (_db, mut conn) = setup();
    for (name, valid) in action_names() {
        assert_eq!(Action::new(name.as_str()).is_ok(), valid, "Action::new({name:?})");
        assert_eq!(
            threadline_syntax::action_name_problem(&name).is_none(),
            valid,
            "the macros' check of {name:?}"
        );
        assert_eq!(
            sql_accepts(&mut conn, RECORD_NAMED, &name, "action name"),
            valid,
            "threadline.record_action named {name:?}"
        );
    }
}

#[test]
fn labels_follow_one_table_in_rust_and_sql() {
    let (_db, mut conn) = setup();
    let action = Action::new("rules_checked").unwrap();
    for (label, valid) in labels() {
        assert_eq!(
            AuditContext::new().with_request_id(label.as_str()).is_ok(),
            valid,
            "request id {label:?}"
        );
        assert_eq!(
            action.clone().with_reason(label.as_str()).is_ok(),
            valid,
            "reason {label:?}"
        );
        for key in [
            "request_id",
            "correlation_id",
            "tenant_id",
            "verb",
            "category",
            "reason",
            "job_id",
        ] {
            let query = format!(
                r#"SELECT threadline.record_action(jsonb_build_object('name', 'rules_checked',
                       'actor', '{{"type": "system", "id": "rules"}}'::jsonb, '{key}', $1::text)) IS NOT NULL AS done"#
            );
            assert_eq!(
                sql_accepts(&mut conn, &query, &label, &format!("\"{key}\"")),
                valid,
                "record_action's {key} {label:?}"
            );
        }
    }
}

#[test]
fn actor_types_follow_one_table_in_rust_and_sql() {
    let (_db, mut conn) = setup();
    let validate = "SELECT threadline.validate_actor(CASE $1 WHEN 'anonymous' THEN jsonb_build_object('type', $1)
                                                   ELSE jsonb_build_object('type', $1, 'id', '1') END) IS NOT NULL AS done";
    for (name, valid) in ACTOR_TYPES {
        assert_eq!(ActorType::parse(name).is_ok(), valid, "ActorType::parse({name:?})");
        assert_eq!(
            sql_accepts(&mut conn, validate, name, "actor type"),
            valid,
            "validate_actor of type {name:?}"
        );
    }
    assert_eq!(
        ActorType::ALL.len(),
        ACTOR_TYPES.iter().filter(|(_, valid)| *valid).count(),
        "the table names every actor type"
    );
}
