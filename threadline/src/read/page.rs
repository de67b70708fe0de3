//! Page queries of changes whose plans do not depend on the audit tables' statistics.
//!
//! Right after a bulk write, before autovacuum has analyzed the audit tables, the planner
//! takes a filter to match a handful of changes, so it reads and sorts every match for
//! each page: an export of a 300 000-change statement read all of them again for every
//! page. A page query here has a shape that stays cheap whatever the planner believes, and
//! runs with the planner methods that could undo that shape turned off ([`Plan`]):
//!
//! - filtered only on the change's own columns (table, time, op, the scope's tables), a
//!   page walks a change index newest first and stops after the page ([`Plan::Walk`]);
//! - filtered on its transaction (actor, tenant, request, correlation, action), a page
//!   finds the matching transactions through their indexes and takes from each at most a
//!   page of its newest changes before the cursor, by `(transaction_id, captured_at, id)`,
//!   and sorts only those ([`Plan::Lookups`]). One huge transaction then costs one page,
//!   not its size; a page costs an index probe per matching transaction.

use chrono::{DateTime, Utc};

use super::filter::Filter;
use super::rows::CHANGE_SOURCE;
use super::scope::Restriction;
use super::sql::{Plan, Sql};

/// The changes `filter` and `restriction` select, as `columns` over the change `c`, its
/// transaction `t` and its action `a`.
pub(crate) struct ChangeQuery<'a> {
    pub(crate) columns: &'a str,
    pub(crate) filter: &'a Filter,
    pub(crate) restriction: &'a Restriction,
}

impl ChangeQuery<'_> {
    /// At most `limit` changes strictly before `after` by `(captured_at, id)`, newest
    /// first.
    pub(crate) fn newest_first(&self, after: Option<(DateTime<Utc>, i64)>, limit: usize) -> Sql {
        let columns = self.columns;
        if !self.selects_transactions() {
            let mut sql = Sql::new(&format!("SELECT {columns}{CHANGE_SOURCE}"));
            self.push_change_sql(&mut sql);
            sql.newest_first("c.captured_at", "c.id", after, limit);
            return sql.planned(Plan::Walk);
        }
        let mut sql = Sql::new(&format!(
            "SELECT {columns} FROM threadline.audit_transactions t \
             LEFT JOIN threadline.audit_actions a ON a.id = t.action_id \
             CROSS JOIN LATERAL (SELECT c.* FROM threadline.audit_changes c WHERE c.transaction_id = t.id"
        ));
        self.push_change_sql(&mut sql);
        sql.newest_first("c.captured_at", "c.id", after, limit);
        sql.push(") c WHERE true");
        self.push_transaction_sql(&mut sql);
        sql.newest_first("c.captured_at", "c.id", None, limit);
        sql.planned(Plan::Lookups)
    }

    /// Whether any predicate is on the transaction or its action: whether pushing them
    /// writes anything, so a predicate added there chooses the right shape by itself.
    fn selects_transactions(&self) -> bool {
        let mut probe = Sql::new("");
        self.push_transaction_sql(&mut probe);
        !probe.is_empty()
    }

    fn push_transaction_sql(&self, sql: &mut Sql) {
        self.filter.push_transaction_sql(sql);
        self.restriction.push_party_sql(sql, "t");
    }

    fn push_change_sql(&self, sql: &mut Sql) {
        self.filter.push_change_sql(sql);
        self.restriction.push_table_sql(sql, "c");
    }
}
