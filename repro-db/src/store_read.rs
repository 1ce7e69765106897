//! Reading: a dataset's view and stamp, lists and totals, the history, sites and usage.

use super::*;

impl Store {
    /// What the datasets of `site` (`None`: those at no site) have in flight now.
    pub async fn usage(&self, site: Option<&str>) -> Result<repro_core::Usage> {
        query::usage(&self.db, Sites::One(site), None).await
    }

    /// What the datasets of every site (and of none) have in flight now, counted against
    /// the limits' total.
    pub async fn usage_total(&self) -> Result<repro_core::Usage> {
        query::usage(&self.db, Sites::All, None).await
    }

    /// The site a dataset is registered at.
    pub async fn site_of(&self, name: &DatasetName) -> Result<Option<String>> {
        use sea_orm::QuerySelect;
        let row: Option<Option<String>> = DatasetStatus::find()
            .select_only()
            .column(dataset_status::Column::Site)
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        row.ok_or_else(|| DbError::NotFound(name.to_string()))
    }

    /// Loads a dataset with its files, merge groups and jobs, from one consistent snapshot.
    pub async fn load(&self, name: &DatasetName) -> Result<DatasetView> {
        Ok(self.load_revised(name).await?.0)
    }

    /// [`Store::load`], with the [`Revision`] the view is of.
    pub async fn load_revised(&self, name: &DatasetName) -> Result<(DatasetView, Revision)> {
        let (view, stamp) = self.load_stamped(name).await?;
        Ok((view, stamp.revision))
    }

    /// [`Store::load`], with the [`Stamp`] the view is of.
    pub async fn load_stamped(&self, name: &DatasetName) -> Result<(DatasetView, Stamp)> {
        let txn = snapshot(&self.db).await?;
        let (view, stamp) = query::load(&txn, name).await?;
        txn.commit().await?;
        Ok((view, stamp))
    }

    /// The dataset's row and revision now: one statement on its row, no file read. A view
    /// loaded at the same [`Stamp`] is the dataset as it is, since every write to it counts
    /// in its revision.
    pub async fn stamp(&self, name: &DatasetName) -> Result<Stamp> {
        use dataset_status::Column as C;
        use sea_orm::QuerySelect;
        let row: Option<(i64, i64)> = DatasetStatus::find()
            .select_only()
            .column(C::Id)
            .column(C::Revision)
            .filter(C::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        let (id, revision) = row.ok_or_else(|| DbError::NotFound(name.to_string()))?;
        Ok(Stamp {
            id,
            revision: Revision(revision),
        })
    }

    /// How many things of `name` a check would poll now, counted by the database
    /// (the length of [`repro_core::plan::polls`] of its view, without loading it).
    pub async fn polls_due(&self, name: &DatasetName) -> Result<u64> {
        query::polls_due(&self.db, name).await
    }

    /// One dataset's state and file counts.
    pub async fn summary(&self, name: &DatasetName) -> Result<DatasetSummary> {
        query::summary(&self.db, name).await
    }

    /// Datasets matching `filter`, with their file counts, in two statements.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<DatasetSummary>> {
        query::list(&self.db, filter).await
    }

    /// Reco and merge jobs of every dataset, every attempt, and how many were retries.
    pub async fn job_totals(&self) -> Result<JobTotals> {
        query::job_totals(&self.db).await
    }

    /// Campaign-wide counts of datasets per column word, files per state and jobs per state.
    pub async fn totals(&self) -> Result<Totals> {
        query::totals(&self.db).await
    }

    /// History rows of `entity` moved by `via` per hour, from the hour holding `since`, for
    /// one dataset or every one (e.g. files reconstructed per hour: `"file"`,
    /// `"reco_done"`). Read from the hourly counts the writes keep, not from the history.
    pub async fn per_hour(
        &self,
        dataset: Option<&DatasetName>,
        entity: &str,
        via: &str,
        since: NaiveDateTime,
    ) -> Result<Vec<(String, u64)>> {
        query::per_hour(&self.db, dataset, entity, via, since).await
    }

    /// How many datasets match `filter` (offset and limit aside).
    pub async fn count(&self, filter: &ListFilter) -> Result<u64> {
        query::count(&self.db, filter).await
    }

    /// A dataset's history, oldest first; `entity` restricts it to one kind (`dataset`,
    /// `file`, `group`, `reco_job`, `merge_job`).
    pub async fn history(
        &self,
        name: &DatasetName,
        entity: Option<&str>,
    ) -> Result<Vec<HistoryEntry>> {
        query::history(&self.db, name, entity).await
    }

    /// The sites datasets are registered at (`""` for none), each once.
    pub async fn sites(&self) -> Result<Vec<String>> {
        use sea_orm::QuerySelect;
        let rows: Vec<Option<String>> = DatasetStatus::find()
            .select_only()
            .column(dataset_status::Column::Site)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out: Vec<String> = rows.into_iter().map(Option::unwrap_or_default).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// One page of the history, oldest first: the moves in the rows after id `after` (at
    /// most `limit` rows; a row that stands for a bulk move gives one entry per file or job
    /// it moved) about `entities` (`"file"`, `"reco_job"`, `"merge_job"`, ...), as (row id,
    /// dataset id, entity, entity id, to state, when). The next page is after the last
    /// entry's row id. For tools that read a campaign's history whole, such as
    /// `repro simulate --calibrate-from`.
    pub async fn history_page(
        &self,
        entities: &[&str],
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, i64, String, i64, String, NaiveDateTime)>> {
        use entity::transitions::Column as T;
        use sea_orm::{QueryOrder, QuerySelect};
        type Row = (
            i64,
            i64,
            String,
            i64,
            String,
            NaiveDateTime,
            i64,
            Option<String>,
        );
        let rows: Vec<Row> = Transitions::find()
            .select_only()
            .columns([
                T::Id,
                T::DatasetId,
                T::Entity,
                T::EntityId,
                T::ToState,
                T::At,
                T::N,
                T::Ids,
            ])
            .filter(T::Id.gt(after))
            .filter(T::Entity.is_in(entities.iter().copied()))
            .order_by_asc(T::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, dataset, entity, entity_id, to, at, n, ids) in rows {
            for e in query::ids_of(id, entity_id, n, ids.as_deref())? {
                out.push((id, dataset, entity.clone(), e, to.clone(), at));
            }
        }
        Ok(out)
    }

    /// The site of every dataset that has one, by dataset name.
    pub async fn dataset_sites(&self) -> Result<std::collections::BTreeMap<String, String>> {
        use sea_orm::QuerySelect;
        let rows: Vec<(String, Option<String>)> = DatasetStatus::find()
            .select_only()
            .columns([dataset_status::Column::Name, dataset_status::Column::Site])
            .filter(dataset_status::Column::Site.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, site)| Some((name, site?)))
            .collect())
    }

    /// Per sample, the datasets of `site` (or all) and their files per state, the datasets
    /// in no sample last; empty when none of them is in a sample.
    pub async fn samples(&self, site: Option<&str>) -> Result<Vec<SampleSummary>> {
        query::samples(&self.db, site).await
    }
}
