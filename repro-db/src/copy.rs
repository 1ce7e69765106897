//! A copy of a campaign into another store: every dataset as it stands, with its files,
//! merge groups and jobs (not its history), read from one snapshot. For playing a
//! campaign forward somewhere it cannot be harmed (`repro simulate`).

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, ModelTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entity::{dataset_status, file_status, merge_group, mergejob_status, recojob_status};
use crate::error::Result;
use crate::{INSERT_CHUNK, Store};

/// Rows read at a time.
const PAGE: u64 = 10_000;

impl Store {
    /// Copies every dataset of this store, as it stands, into `dest` (a migrated store
    /// with no datasets): rows keep their ids, so files, groups and jobs keep pointing at
    /// each other. Leases and what waited are not copied: in the copy nobody holds
    /// anything yet. The history stays behind. Returns the number of rows copied.
    pub async fn copy_campaign_into(&self, dest: &Store) -> Result<u64> {
        let src = crate::snapshot(&self.db).await?;
        let dst = dest.db.begin().await?;
        let mut n =
            copy_table::<dataset_status::Entity>(&src, &dst, dataset_status::Column::Id, |m| {
                dataset_status::Model {
                    lease_owner: None,
                    lease_until: None,
                    waiting: None,
                    // A copy is played against another world: what settled here did not there.
                    settled: None,
                    ..m
                }
            })
            .await?;
        // Retry times are the live clock's: in the copy, played on a clock of its own,
        // what waits is due at once.
        n += copy_table::<file_status::Entity>(&src, &dst, file_status::Column::Id, |m| {
            file_status::Model {
                retry_at: None,
                failing_since: None,
                ..m
            }
        })
        .await?;
        n += copy_table::<merge_group::Entity>(&src, &dst, merge_group::Column::Id, |m| {
            merge_group::Model {
                retry_at: None,
                failing_since: None,
                ..m
            }
        })
        .await?;
        n += copy_table::<recojob_status::Entity>(&src, &dst, recojob_status::Column::Id, |m| m)
            .await?;
        n += copy_table::<mergejob_status::Entity>(&src, &dst, mergejob_status::Column::Id, |m| m)
            .await?;
        // The copy's counts, from its rows (its history, and so its hourly counts, stay
        // behind).
        for select in migration::state_selects(dest.backend()) {
            let sql = format!(
                "INSERT INTO state_count (dataset_id, entity, state, n, sample, bytes, tmb_bytes) {select}"
            );
            dst.execute_unprepared(&sql).await?;
        }
        dst.commit().await?;
        src.commit().await?;
        Ok(n)
    }
}

/// Copies the rows of one table in pages by id, each page in multi-row inserts.
async fn copy_table<E>(
    src: &DatabaseTransaction,
    dst: &DatabaseTransaction,
    id: E::Column,
    adjust: impl Fn(E::Model) -> E::Model,
) -> Result<u64>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + ModelTrait<Entity = E>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
{
    let mut after = i64::MIN;
    let mut copied = 0;
    loop {
        let page: Vec<E::Model> = E::find()
            .filter(id.gt(after))
            .order_by_asc(id)
            .limit(PAGE)
            .all(src)
            .await?;
        let Some(last) = page.last() else {
            return Ok(copied);
        };
        after = match last.get(id) {
            sea_orm::Value::BigInt(Some(v)) => v,
            sea_orm::Value::Int(Some(v)) => i64::from(v),
            other => unreachable!("every table's id is an integer, not {other:?}"),
        };
        copied += page.len() as u64;
        let rows: Vec<E::ActiveModel> = page
            .into_iter()
            .map(|m| adjust(m).into_active_model())
            .collect();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<E::ActiveModel> = rows.by_ref().take(INSERT_CHUNK / 4).collect();
            E::insert_many(chunk).exec(dst).await?;
        }
    }
}
