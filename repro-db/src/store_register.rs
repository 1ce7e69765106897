//! Datasets in and out: registering with their raw files, deleting, and the operator's
//! settings (sample, priority, accepted losses).

use super::*;

impl Store {
    /// Registers a dataset with its raw files, `LOCK`ed unless `opts.unlock`. All or nothing:
    /// a duplicate name or file registers nothing.
    pub async fn register(
        &self,
        name: &DatasetName,
        files: &[NewFile],
        opts: &Register,
        actor: &str,
    ) -> Result<i64> {
        let mut seen = std::collections::HashSet::with_capacity(files.len());
        for f in files {
            if !seen.insert(f.lfn.as_str()) {
                return Err(DbError::DuplicateFile {
                    dataset: name.to_string(),
                    lfn: f.lfn.clone(),
                });
            }
        }
        let now = now();
        let status = if opts.unlock {
            Status {
                lock: repro_core::LockWord::Unlock,
                ..Status::NEW
            }
        } else {
            Status::NEW
        };
        let c = status.columns();
        let (_turn, txn) = self.write_txn().await?;
        let id = insert_dataset(&txn, name, &c, opts, now).await?;
        let state = FileState::Registered.as_str();
        insert_files(&txn, id, files, now).await?;
        let sample = opts.sample.as_ref().map(|s| s.as_str());
        let mut deltas = counts::Deltas::of(id, sample);
        let raw = files
            .iter()
            .map(|f| i64::try_from(f.size).unwrap_or(i64::MAX))
            .fold(0i64, i64::saturating_add);
        let bytes = counts::Bytes { raw, tmb: 0 };
        deltas.created(id, "file", state, files.len() as u64, bytes);
        deltas.write(&txn, now).await?;
        write::history(
            &txn,
            vec![write::HistoryRow {
                dataset_id: id,
                entity: "dataset",
                entity_id: id,
                from: "-".into(),
                to: c.to_string(),
                via: "register".into(),
                reason: Some(repro_core::words::count(files.len() as u64, "raw file")),
            }],
            actor,
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(id)
    }

    /// Puts a dataset into `sample`, or into none; recorded in its history.
    pub async fn set_sample(
        &self,
        name: &DatasetName,
        sample: Option<&SampleName>,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let to = sample.map_or("-".to_owned(), |s| s.to_string());
        self.set_setting(name, actor, reason, "set_sample", |row| {
            let from = row.sample.clone().unwrap_or_else(|| "-".into());
            // The dataset's counts move to the new sample with it, in the same transaction.
            let mut m: dataset_status::ActiveModel = row.into();
            m.sample = Set(sample.map(|s| s.to_string()));
            (m, from, to)
        })
        .await
    }

    /// Gives a dataset priority `priority` (higher gets budget first); recorded in its
    /// history.
    pub async fn set_priority(
        &self,
        name: &DatasetName,
        priority: i32,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        self.set_setting(name, actor, reason, "set_priority", |row| {
            let from = row.priority.to_string();
            let mut m: dataset_status::ActiveModel = row.into();
            m.priority = Set(priority);
            (m, from, priority.to_string())
        })
        .await
    }

    /// Keeps `lost` as the number of the dataset's raw files failed for good that an
    /// operator accepts losing (`repro_core::operator::accept` says what may be kept),
    /// with a history row `accept` and the reason.
    pub async fn accept_lost(
        &self,
        name: &DatasetName,
        lost: u64,
        actor: &str,
        reason: &str,
    ) -> Result<()> {
        self.set_setting(name, actor, Some(reason), "accept", |row| {
            let from = row.accepted_lost.to_string();
            let mut m: dataset_status::ActiveModel = row.into();
            m.accepted_lost = Set(i64::try_from(lost).unwrap_or(i64::MAX));
            (m, from, lost.to_string())
        })
        .await
    }

    /// Deletes a dataset and everything recorded about it.
    pub async fn delete(&self, name: &DatasetName) -> Result<()> {
        let _turn = self.turn().await;
        let res = DatasetStatus::delete_many()
            .filter(dataset_status::Column::Name.eq(name.as_str()))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Err(DbError::NotFound(name.to_string()));
        }
        Ok(())
    }
}

/// Inserts dataset `name`'s row at `c`, with its site, sample and priority; its row id.
async fn insert_dataset(
    txn: &sea_orm::DatabaseTransaction,
    name: &DatasetName,
    c: &repro_core::Columns,
    opts: &Register,
    now: chrono::NaiveDateTime,
) -> Result<i64> {
    let mut row = dataset_status::ActiveModel {
        name: Set(name.to_string()),
        site: Set(opts.site.clone()),
        sample: Set(opts.sample.as_ref().map(|s| s.to_string())),
        priority: Set(opts.priority),
        lease_owner: Set(None),
        lease_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    for (column, word) in dataset_status::state_words(*c) {
        sea_orm::ActiveModelTrait::set(&mut row, column, word.into());
    }
    let inserted = DatasetStatus::insert(row)
        .exec(txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                DbError::Exists(name.to_string())
            }
            _ => DbError::from(e),
        })?;
    Ok(inserted.last_insert_id)
}

/// Inserts dataset `id`'s raw `files`, `registered`, in bulk.
async fn insert_files(
    txn: &sea_orm::DatabaseTransaction,
    id: i64,
    files: &[NewFile],
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let state = FileState::Registered.as_str();
    for chunk in files.chunks(INSERT_CHUNK) {
        let rows = chunk
            .iter()
            .map(|f| {
                Ok(file_status::ActiveModel {
                    dataset_id: Set(id),
                    lfn: Set(f.lfn.clone()),
                    size: Set(i64::try_from(f.size).map_err(|_| DbError::OutOfRange {
                        what: "file size",
                        value: f.size.to_string(),
                    })?),
                    state: Set(state.into()),
                    attempts: Set(0),
                    attempt_base: Set(0),
                    last_error: Set(None),
                    tmb_path: Set(None),
                    tmb_size: Set(None),
                    merge_group: Set(None),
                    updated_at: Set(now),
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        FileStatus::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
