//! SQLite only: the checks of migration 7 become `CHECK` constraints of their tables
//! instead of triggers. A trigger runs a program of its own for every row written, and
//! the twelve of `file_status` and the jobs' tables cost more than the write itself: a
//! bulk move of 50,000 files took 0.36–0.43 s with them, 0.16–0.19 s without, and
//! 0.21–0.25 s with the same checks as constraints (the words tested by a `CASE`, which
//! SQLite evaluates in line; an `IN` list cost a little more). The database refuses the
//! same words and numbers as before; a refusal now names its constraint
//! (`CHECK constraint failed: ck_file_status_state`).
//!
//! SQLite cannot add a constraint to a table, so each checked table is rebuilt the way
//! SQLite's documentation prescribes (<https://sqlite.org/lang_altertable.html>, "making
//! other kinds of table schema changes"): with foreign keys off, on one connection, in
//! one transaction, a new table is created from the old one's definition plus its
//! checks, the rows are copied, the old table dropped and the new one renamed, and its
//! indexes created again; the foreign keys are checked before the commit and the
//! `AUTOINCREMENT` high-water mark is kept. `down` does the reverse and gives the triggers
//! back. MariaDB/MySQL and PostgreSQL had constraints from migration 7: nothing to do.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::sea_orm::sqlx::{self, AssertSqlSafe, Connection, Row, SqliteConnection};
use sea_orm_migration::sea_orm::{DatabaseConnectionType, DatabaseExecutor};

use crate::m20261201_000007_check_state_words::{CHECKED, checks, statements};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables migration 7 checks, parents before children.
const TABLES: &[&str] = &[
    "dataset_status",
    "file_status",
    "merge_group",
    "recojob_status",
    "mergejob_status",
];

/// The constraints `table` gets, each as the text added to its definition, in the order
/// of migration 7's checks.
fn constraints(table: &str) -> Vec<String> {
    checks()
        .into_iter()
        .filter(|c| c.table == table)
        .map(|c| {
            let test = if c.words {
                let words = CHECKED
                    .iter()
                    .find(|w| w.table == c.table && w.column == c.column)
                    .map(|w| w.words)
                    .unwrap_or_default();
                let arms: String = words
                    .iter()
                    .map(|w| format!(" WHEN '{w}' THEN 1"))
                    .collect();
                format!("CASE \"{}\"{arms} ELSE 0 END", c.column)
            } else {
                format!("\"{}\" {}", c.column, c.predicate)
            };
            format!(", CONSTRAINT \"{}\" CHECK ({test})", c.name)
        })
        .collect()
}

/// `table`'s definition with the checks (`add`) or without them, under the name `new`.
fn definition(sql: &str, table: &str, new: &str, add: bool) -> Result<String, DbErr> {
    let bad = |why: &str| DbErr::Migration(format!("cannot rebuild {table}: {why}: {sql}"));
    let open = sql.find('(').ok_or_else(|| bad("no column list"))?;
    let close = sql.rfind(')').ok_or_else(|| bad("no column list"))?;
    let mut body = sql[open + 1..close].to_owned();
    for c in constraints(table) {
        match (add, body.contains(&c)) {
            (true, false) => body.push_str(&c),
            (false, true) => body = body.replace(&c, ""),
            (true, true) => return Err(bad("it has its checks already")),
            (false, false) => return Err(bad("a check is not where migration 14 put it")),
        }
    }
    Ok(format!("CREATE TABLE \"{new}\" ({body})"))
}

/// Rebuilds every checked table with its checks (`add`) or without, on `conn`, in one
/// transaction with foreign keys off.
async fn rebuild(conn: &mut SqliteConnection, add: bool) -> Result<(), DbErr> {
    let err = |e: sqlx::Error| DbErr::Migration(format!("rebuilding the checked tables: {e}"));
    // Foreign keys cannot be turned off inside a transaction; off, dropping a parent
    // table does not delete its children's rows.
    sqlx::raw_sql("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    let mut txn = conn.begin().await.map_err(err)?;
    let trigger_names: Vec<String> = checks()
        .iter()
        .flat_map(|c| [format!("{}_ins", c.name), format!("{}_upd", c.name)])
        .collect();
    if add {
        for name in &trigger_names {
            sqlx::raw_sql(AssertSqlSafe(format!("DROP TRIGGER IF EXISTS \"{name}\"")))
                .execute(&mut *txn)
                .await
                .map_err(err)?;
        }
    }
    for table in TABLES {
        let sql: String =
            sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_one(&mut *txn)
                .await
                .map_err(err)?
                .try_get(0)
                .map_err(err)?;
        // Its indexes and any trigger of its own (none but migration 7's so far).
        let others: Vec<String> = sqlx::query(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') \
             AND tbl_name = ? AND sql IS NOT NULL",
        )
        .bind(table)
        .fetch_all(&mut *txn)
        .await
        .map_err(err)?
        .into_iter()
        .filter(|r| {
            let name: String = r.try_get(0).unwrap_or_default();
            !trigger_names.contains(&name)
        })
        .map(|r| r.try_get(1))
        .collect::<Result<_, _>>()
        .map_err(err)?;
        let seq: Option<i64> = sqlx::query("SELECT seq FROM sqlite_sequence WHERE name = ?")
            .bind(table)
            .fetch_optional(&mut *txn)
            .await
            .map_err(err)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(err)?;
        let new = format!("{table}_rebuilt");
        let mut script = vec![
            definition(&sql, table, &new, add)?,
            format!("INSERT INTO \"{new}\" SELECT * FROM \"{table}\""),
            format!("DROP TABLE \"{table}\""),
            format!("ALTER TABLE \"{new}\" RENAME TO \"{table}\""),
        ];
        script.extend(others);
        if let Some(seq) = seq {
            script.push(format!(
                "UPDATE sqlite_sequence SET seq = max(seq, {seq}) WHERE name = '{table}'"
            ));
        }
        for sql in script {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *txn)
                .await
                .map_err(err)?;
        }
    }
    if !add {
        for sql in statements(DbBackend::Sqlite, true) {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *txn)
                .await
                .map_err(err)?;
        }
    }
    let broken = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut *txn)
        .await
        .map_err(err)?;
    if !broken.is_empty() {
        return Err(DbErr::Migration(format!(
            "rebuilding the checked tables would break {} foreign keys; nothing was changed",
            broken.len()
        )));
    }
    txn.commit().await.map_err(err)?;
    sqlx::raw_sql("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    Ok(())
}

/// Runs [`rebuild`] on a connection of its own. A connection that failed half way is
/// closed, not given back with its foreign keys off.
async fn on_own_connection(manager: &SchemaManager<'_>, add: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    // Run without a transaction (SQLite's default), so the pool is at hand.
    let pool = match manager.get_connection() {
        DatabaseExecutor::Connection(db) => match &db.inner {
            DatabaseConnectionType::SqlxSqlitePoolConnection(_) => db.get_sqlite_connection_pool(),
            _ => return Err(DbErr::Migration("migration 14 needs a SQLite pool".into())),
        },
        _ => {
            return Err(DbErr::Migration(
                "migration 14 rebuilds tables with foreign keys off, which a transaction cannot"
                    .into(),
            ));
        }
    };
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| DbErr::Migration(format!("no connection for the rebuild: {e}")))?;
    match rebuild(&mut conn, add).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = conn.close().await;
            Err(e)
        }
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        on_own_connection(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        on_own_connection(manager, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_gets_its_checks_and_gives_them_back() {
        let sql = "CREATE TABLE \"file_status\" ( \"id\" integer, \"state\" varchar(32) NOT NULL )";
        let with = definition(sql, "file_status", "file_status_rebuilt", true).unwrap();
        assert!(
            with.starts_with("CREATE TABLE \"file_status_rebuilt\" ("),
            "{with}"
        );
        assert!(
            with.contains(
                "CONSTRAINT \"ck_file_status_state\" CHECK (CASE \"state\" WHEN 'registered' THEN 1"
            ),
            "{with}"
        );
        assert!(with.contains("CHECK (\"attempt_base\" >= 0)"), "{with}");
        assert!(definition(&with, "file_status", "x", true).is_err());
        let without = definition(&with, "file_status", "file_status", false).unwrap();
        assert_eq!(
            without,
            "CREATE TABLE \"file_status\" ( \"id\" integer, \"state\" varchar(32) NOT NULL )"
        );
    }
}
