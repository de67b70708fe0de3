//! Ground truth kept by the writers, and the check of the trail against it.

use std::collections::{BTreeMap, HashMap};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{Integer, Nullable, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl, sql_query};

/// A small deterministic generator (xorshift), so a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// How a transaction ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// COMMIT returned success: its changes must all be in the trail.
    Committed,
    /// ROLLBACK, or a failure before COMMIT was sent: none of its changes may be.
    RolledBack,
    /// The connection died during COMMIT: all of its changes or none.
    Unknown,
}

/// What [`Writer::transaction`] left the connection as.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Usable,
    ConnectionLost,
}

/// One writer: an actor `user:w<n>` that writes only its own keys, tags each transaction
/// with a correlation id, and remembers each transaction's fate and change count.
pub struct Writer {
    n: usize,
    rng: Rng,
    seq: u64,
    rows: BTreeMap<i32, i32>,
    pub fates: Vec<(String, Fate, usize)>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Integer)]
    n: i32,
}

impl Writer {
    pub fn new(n: usize, seed: u64) -> Self {
        Writer {
            n,
            rng: Rng(seed),
            seq: 0,
            rows: BTreeMap::new(),
            fates: Vec::new(),
        }
    }

    fn first_key(&self) -> i32 {
        self.n as i32 * 1000
    }

    /// Reads this writer's rows back after a reconnect (an unknown commit may or may not
    /// have happened).
    pub fn reload(&mut self, conn: &mut PgConnection) {
        let query = format!(
            "SELECT id, n FROM ledger WHERE id >= {} AND id < {}",
            self.first_key(),
            self.first_key() + 1000
        );
        if let Ok(rows) = sql_query(query).load::<Row>(conn) {
            self.rows = rows.into_iter().map(|r| (r.id, r.n)).collect();
        }
    }

    /// Runs one transaction of one to three writes, rolled back one time in five.
    pub fn transaction(&mut self, conn: &mut PgConnection) -> Outcome {
        self.seq += 1;
        let tag = format!("t-{}-{}", self.n, self.seq);
        let context = format!(
            r#"{{"actor": {{"type": "user", "id": "w{}"}}, "correlation_id": "{tag}"}}"#,
            self.n
        );
        if conn.batch_execute("BEGIN").is_err() {
            return Outcome::ConnectionLost;
        }
        let mut rows = self.rows.clone();
        let mut changes = 0;
        let mut statements = vec![format!("SELECT threadline.begin_audit('{context}')")];
        for _ in 0..=self.rng.below(3) {
            let key = self.first_key() + self.rng.below(40) as i32;
            statements.push(match rows.get(&key).copied() {
                Some(n) if self.rng.below(3) > 0 => {
                    rows.insert(key, n + 1);
                    format!("UPDATE ledger SET n = n + 1, note = '{tag}' WHERE id = {key}")
                }
                Some(_) => {
                    rows.remove(&key);
                    format!("DELETE FROM ledger WHERE id = {key}")
                }
                None => {
                    rows.insert(key, 0);
                    format!("INSERT INTO ledger VALUES ({key}, 0, '{tag}')")
                }
            });
        }
        for (i, statement) in statements.iter().enumerate() {
            match sql_query(statement).execute(conn) {
                Ok(n) if i > 0 => changes += n,
                Ok(_) => {}
                Err(_) => return self.end_failed(conn, tag),
            }
        }
        if self.rng.below(5) == 0 {
            self.fates.push((tag, Fate::RolledBack, 0));
            return match conn.batch_execute("ROLLBACK") {
                Ok(()) => Outcome::Usable,
                Err(_) => Outcome::ConnectionLost,
            };
        }
        match conn.batch_execute("COMMIT") {
            Ok(()) => {
                self.fates.push((tag, Fate::Committed, changes));
                self.rows = rows;
                Outcome::Usable
            }
            Err(_) => {
                self.fates.push((tag, Fate::Unknown, changes));
                Outcome::ConnectionLost
            }
        }
    }

    /// A statement failed before COMMIT: the transaction is rolled back whatever happened.
    fn end_failed(&mut self, conn: &mut PgConnection, tag: String) -> Outcome {
        self.fates.push((tag, Fate::RolledBack, 0));
        match conn.batch_execute("ROLLBACK") {
            Ok(()) => {
                self.reload(conn);
                Outcome::Usable
            }
            Err(_) => Outcome::ConnectionLost,
        }
    }

    /// How many transactions ended each way.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let count = |fate| self.fates.iter().filter(|(_, f, _)| *f == fate).count();
        vec![
            ("committed", count(Fate::Committed)),
            ("rolled back", count(Fate::RolledBack)),
            ("unknown", count(Fate::Unknown)),
        ]
    }
}

/// What the trail check found.
#[derive(Debug, Default)]
pub struct Report {
    pub checked: usize,
    pub lost: usize,
    pub phantom: usize,
    pub misattributed: usize,
}

#[derive(QueryableByName)]
struct Captured {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    op: String,
    #[diesel(sql_type = Nullable<Integer>)]
    n: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    tag: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    actor: Option<String>,
}

/// Checks the trail of `ledger` against the writers' ground truth: every committed
/// transaction has exactly its changes, no rolled-back one has any, every change carries
/// the actor of the writer that tagged it and touches only that writer's keys, and
/// replaying the trail gives the table as it is.
pub fn check_trail(conn: &mut PgConnection, writers: &[Writer]) -> Report {
    let captured: Vec<Captured> = sql_query(
        "SELECT (c.table_pk ->> 'id')::int AS id, c.op, (c.data ->> 'n')::int AS n,
                t.correlation_id AS tag, t.actor ->> 'id' AS actor
           FROM threadline.audit_changes c JOIN threadline.audit_transactions t ON t.id = c.transaction_id
          WHERE c.table_name = 'ledger'
          ORDER BY c.captured_at, c.id",
    )
    .load(conn)
    .unwrap();
    let mut report = Report {
        checked: captured.len(),
        ..Report::default()
    };
    let mut per_tag: HashMap<&str, usize> = HashMap::new();
    let mut replayed: BTreeMap<i32, i32> = BTreeMap::new();
    for change in &captured {
        let tag = change.tag.as_deref().unwrap_or("");
        *per_tag.entry(tag).or_default() += 1;
        let writer = tag.split('-').nth(1).and_then(|w| w.parse::<i32>().ok());
        let attributed =
            writer.is_some_and(|w| change.actor.as_deref() == Some(format!("w{w}").as_str()) && change.id / 1000 == w);
        if !attributed {
            report.misattributed += 1;
        }
        match (change.op.as_str(), change.n) {
            ("delete", _) => {
                replayed.remove(&change.id);
            }
            (_, Some(n)) => {
                replayed.insert(change.id, n);
            }
            _ => report.lost += 1,
        }
    }
    let mut known = 0;
    for (tag, fate, changes) in writers.iter().flat_map(|w| &w.fates) {
        let found = per_tag.get(tag.as_str()).copied().unwrap_or(0);
        known += found;
        match fate {
            Fate::Committed => report.lost += changes.abs_diff(found),
            Fate::RolledBack => report.phantom += found,
            Fate::Unknown if found == 0 || found == *changes => {}
            Fate::Unknown => report.phantom += found,
        }
    }
    report.phantom += captured.len() - known;
    let table: BTreeMap<i32, i32> = sql_query("SELECT id, n FROM ledger")
        .load::<Row>(conn)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.n))
        .collect();
    for (id, n) in &table {
        if replayed.get(id) != Some(n) {
            report.lost += 1;
        }
    }
    report.phantom += replayed.keys().filter(|id| !table.contains_key(id)).count();
    report
}
