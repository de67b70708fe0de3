use std::sync::{Arc, Mutex};

use chrono::Utc;
use threadline::Error;
use threadline::export::{ExportOptions, Format};
use threadline::read::{ActorFilter, Filter, Reader, Restriction, RowKey, Surface};
use threadline::{ActorRef, ActorType};

use crate::{ctx, seeded, table, write};

/// Two tenants' rows; returns the transaction ids of acme's and globex's writes.
fn two_tenants(conn: &mut diesel::PgConnection) -> (i64, i64) {
    let acme = write(
        conn,
        &ctx("user:1", "r1", "flow-a", "acme"),
        "INSERT INTO posts (id, title) VALUES (1, 'acme post'); INSERT INTO notes VALUES (1, 'acme note')",
    );
    let globex = write(
        conn,
        &ctx("user:2", "r2", "flow-g", "globex"),
        "INSERT INTO posts (id, title) VALUES (2, 'globex post')",
    );
    (acme, globex)
}

#[test]
fn a_tenant_scope_hides_other_tenants_as_not_found_on_every_read() {
    let (_db, mut conn) = seeded();
    let (acme, globex) = two_tenants(&mut conn);
    let reader = Reader::scoped(|_| Restriction::new().tenant("acme"));
    let r = &reader;

    let timeline = r.timeline_blocking(&mut conn, &Filter::new()).unwrap();
    assert!(timeline.entries.iter().all(|c| c.tenant_id.as_deref() == Some("acme")));
    assert_eq!(timeline.entries.len(), 2);
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert!(
        r.row_history_blocking(&mut conn, &table("posts"), &RowKey::from(1))
            .is_ok()
    );
    assert!(matches!(
        r.row_history_blocking(&mut conn, &table("posts"), &RowKey::from(2)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        r.as_of_blocking(&mut conn, &table("posts"), &RowKey::from(2), later),
        Err(Error::NotFound { .. })
    ));
    assert!(r.incident_bundle_blocking(&mut conn, acme, None, 10).is_ok());
    assert!(matches!(
        r.incident_bundle_blocking(&mut conn, globex, None, 10),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        r.correlation_bundle_blocking(&mut conn, "flow-g", None, 10),
        Err(Error::NotFound { .. })
    ));
    let users = r
        .actor_history_blocking(&mut conn, &ActorFilter::OfType(ActorType::User), None, 10)
        .unwrap();
    assert_eq!(users.entries.iter().map(|t| t.id).collect::<Vec<_>>(), [acme]);

    let mut out = Vec::new();
    reader
        .export(&Filter::new(), ExportOptions::new(Format::Ndjson))
        .unwrap()
        .write_to_blocking(&mut conn, &mut out, |_| {})
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(!text.contains("globex"));
}

#[test]
fn a_table_and_actor_scope_narrow_every_read() {
    let (_db, mut conn) = seeded();
    let (acme, _) = two_tenants(&mut conn);
    let reader = Reader::scoped(|_| Ok(Restriction::new().table("posts")?.actor(ActorRef::user("1")?)));
    let r = &reader;
    let timeline = r.timeline_blocking(&mut conn, &Filter::new()).unwrap();
    assert_eq!(timeline.entries.len(), 1);
    assert_eq!(timeline.entries[0].data.as_ref().unwrap()["title"], "acme post");
    let incident = r.incident_bundle_blocking(&mut conn, acme, None, 10).unwrap();
    assert_eq!(incident.changes.entries.len(), 1, "the note is outside the scope");
    assert!(matches!(
        r.row_history_blocking(&mut conn, &table("notes"), &RowKey::from(1)),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_refusing_scope_fails_closed_and_sees_each_surface() {
    let (_db, mut conn) = seeded();
    let (acme, _) = two_tenants(&mut conn);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let reader = Reader::scoped({
        let asked = asked.clone();
        move |surface| {
            asked.lock().unwrap().push(surface);
            Err(Error::ScopeRefused("no tenant on this session".into()))
        }
    });
    let r = &reader;
    let refused = |result: Result<(), Error>| matches!(result, Err(Error::ScopeRefused(_)));
    assert!(refused(r.timeline_blocking(&mut conn, &Filter::new()).map(drop)));
    assert!(refused(
        r.row_history_blocking(&mut conn, &table("posts"), &RowKey::from(1))
            .map(drop)
    ));
    assert!(refused(
        r.as_of_blocking(&mut conn, &table("posts"), &RowKey::from(1), Utc::now())
            .map(drop)
    ));
    assert!(refused(r.incident_bundle_blocking(&mut conn, acme, None, 10).map(drop)));
    assert!(refused(
        r.actor_history_blocking(&mut conn, &ActorFilter::OfType(ActorType::User), None, 10)
            .map(drop)
    ));
    assert!(refused(
        r.correlation_bundle_blocking(&mut conn, "flow-a", None, 10).map(drop)
    ));
    assert!(refused(
        reader.export(&Filter::new(), ExportOptions::new(Format::Csv)).map(drop)
    ));
    assert_eq!(
        *asked.lock().unwrap(),
        [
            Surface::Timeline,
            Surface::RowHistory,
            Surface::AsOf,
            Surface::Incident,
            Surface::ActorHistory,
            Surface::Correlation,
            Surface::Export
        ]
    );
}

#[test]
fn a_scope_that_states_no_condition_refuses_instead_of_reading_everything() {
    let (_db, mut conn) = seeded();
    two_tenants(&mut conn);
    let forgetful = Reader::scoped(|surface| match surface {
        Surface::Timeline => Restriction::new().tenant("acme"),
        _ => Ok(Restriction::new()),
    });
    let r = &forgetful;
    assert_eq!(r.timeline_blocking(&mut conn, &Filter::new()).unwrap().entries.len(), 2);
    let refused = r.row_history_blocking(&mut conn, &table("posts"), &RowKey::from(2));
    assert!(
        matches!(refused, Err(Error::ScopeRefused(ref why)) if why.contains("unrestricted")),
        "{refused:?}"
    );
    assert!(matches!(
        forgetful.export(&Filter::new(), ExportOptions::new(Format::Csv)),
        Err(Error::ScopeRefused(_))
    ));

    let admin = Reader::scoped(|_| Ok(Restriction::unrestricted()));
    assert_eq!(
        admin
            .timeline_blocking(&mut conn, &Filter::new())
            .unwrap()
            .entries
            .len(),
        3
    );
}
