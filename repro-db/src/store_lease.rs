//! Who works on a dataset: leases, the settled marker, what waited for budget, and the
//! ticks each site recorded.

use super::*;

impl Store {
    /// Records that a tick found nothing new and nothing to do for `name` at `revision`
    /// (as [`Store::load_revised`] gave it, or its own writes since, as
    /// [`Store::apply_revised`] returned them), with `token` saying under what
    /// (the policy, the backend's cursor). Written only if the dataset is still at
    /// `revision`: a write since then means the finding is stale, and `false` is returned.
    pub async fn settle(
        &self,
        name: &DatasetName,
        revision: Revision,
        token: &str,
    ) -> Result<bool> {
        use dataset_status::Column as C;
        let marker = format!("{}|{token}", revision.0);
        let _turn = self.turn().await;
        let r = DatasetStatus::update_many()
            .col_expr(C::Settled, Expr::value(Some(marker)))
            .filter(C::Name.eq(name.as_str()))
            .filter(C::Revision.eq(revision.0))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Whether a tick found nothing to do for `name` under `token` ([`Store::settle`]) and
    /// nothing has been written to it since: then a tick under the same token would find
    /// the same nothing. One statement on the dataset's row; no file is read.
    pub async fn is_settled(&self, name: &DatasetName, token: &str) -> Result<bool> {
        Ok(self.settled_token(name).await?.as_deref() == Some(token))
    }

    /// The token a tick settled `name` under ([`Store::settle`]), if nothing has been
    /// written to it since.
    pub async fn settled_token(&self, name: &DatasetName) -> Result<Option<String>> {
        use dataset_status::Column as C;
        use sea_orm::QuerySelect;
        let row: Option<(i64, Option<String>)> = DatasetStatus::find()
            .select_only()
            .column(C::Revision)
            .column(C::Settled)
            .filter(C::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        let (revision, settled) = row.ok_or_else(|| DbError::NotFound(name.to_string()))?;
        Ok(settled.and_then(|s| {
            let (r, token) = s.split_once('|')?;
            (r == revision.to_string()).then(|| token.to_owned())
        }))
    }

    /// Claims `name` for `owner` until `now + ttl`. Succeeds if the dataset is unclaimed,
    /// its lease expired, or `owner` holds it already (renewal); otherwise
    /// [`DbError::LeaseHeld`] names the holder.
    pub async fn claim(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
    ) -> Result<Lease> {
        self.claim_or_take_over(name, owner, ttl, now, |_| false)
            .await
    }

    /// [`Store::claim`], also taking over a live lease whose holder `gone` says is provably
    /// gone (a process of this host that no longer exists). Taking over an expired or a
    /// gone holder's lease is recorded in the history (`take_over_lease`, naming the
    /// holder). Guarded by the holder read, so two processes racing to take over one lease
    /// cannot both win.
    pub async fn claim_or_take_over(
        &self,
        name: &DatasetName,
        owner: &str,
        ttl: Duration,
        now: NaiveDateTime,
        gone: impl Fn(&str) -> bool,
    ) -> Result<Lease> {
        use dataset_status::Column as C;
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        for _ in 0..5 {
            let row = DatasetStatus::find()
                .filter(C::Name.eq(name.as_str()))
                .one(&self.db)
                .await?
                .ok_or_else(|| DbError::NotFound(name.to_string()))?;
            let held = row.lease_owner.as_deref().map(|h| (h, row.lease_until));
            let takeover = may_claim(name, held, owner, now, &gone)?;
            let (_turn, txn) = self.write_txn().await?;
            let mut q = DatasetStatus::update_many()
                .col_expr(C::LeaseOwner, Expr::value(owner))
                .col_expr(C::LeaseUntil, Expr::value(until))
                .filter(C::Id.eq(row.id));
            q = match &row.lease_owner {
                None => q.filter(C::LeaseOwner.is_null()),
                Some(h) => q.filter(C::LeaseOwner.eq(h.as_str())),
            };
            if let Some(u) = row.lease_until {
                q = q.filter(C::LeaseUntil.eq(u));
            }
            if q.exec(&txn).await?.rows_affected != 1 {
                // Someone else claimed, renewed or released it since the read: look again.
                continue;
            }
            if let (Some(why), Some(holder)) = (takeover, &row.lease_owner) {
                write::history(
                    &txn,
                    vec![write::HistoryRow {
                        dataset_id: row.id,
                        entity: "dataset",
                        entity_id: row.id,
                        from: format!("lease {holder}"),
                        to: format!("lease {owner}"),
                        via: "take_over_lease".into(),
                        reason: Some(why),
                    }],
                    owner,
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            return Ok(Lease {
                dataset: name.to_string(),
                owner: owner.to_owned(),
                until,
                site: row.site,
            });
        }
        let row = DatasetStatus::find()
            .filter(C::Name.eq(name.as_str()))
            .one(&self.db)
            .await?
            .ok_or_else(|| DbError::NotFound(name.to_string()))?;
        Err(DbError::LeaseHeld {
            dataset: name.to_string(),
            owner: row.lease_owner.unwrap_or_default(),
            until: row.lease_until.unwrap_or(now),
        })
    }

    /// Records that `owner` ran a tick at `now` for each of `sites` (`""` for datasets
    /// without a site): what `/metrics` exports as the last tick per site.
    pub async fn record_tick(
        &self,
        sites: &[String],
        owner: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        use entity::site_tick;
        use sea_orm::sea_query::OnConflict;
        if sites.is_empty() {
            return Ok(());
        }
        let _turn = self.turn().await;
        let rows = sites.iter().map(|s| site_tick::ActiveModel {
            site: Set(s.clone()),
            last_tick_at: Set(now),
            last_owner: Set(owner.to_owned()),
        });
        SiteTick::insert_many(rows)
            .on_conflict(
                OnConflict::column(site_tick::Column::Site)
                    .update_columns([site_tick::Column::LastTickAt, site_tick::Column::LastOwner])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// When each site last had a tick, and by whom: `(site, at, owner)`, by site.
    pub async fn last_ticks(&self) -> Result<Vec<(String, NaiveDateTime, String)>> {
        use entity::site_tick;
        use sea_orm::QueryOrder;
        Ok(SiteTick::find()
            .order_by_asc(site_tick::Column::Site)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.site, r.last_tick_at, r.last_owner))
            .collect())
    }

    /// Gives a lease back. Releasing a lease that expired and was taken over does nothing.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        self.release_noting(lease, None).await
    }

    /// Gives a lease back and records, in the same statement, what of the dataset waited
    /// for budget in the run that held it (`Some(None)`: nothing; see
    /// [`Store::set_waiting`]). A lease that expired and was taken over is left to its
    /// new holder, with what it records.
    pub async fn release_noting(&self, lease: &Lease, waiting: Option<Option<&str>>) -> Result<()> {
        use dataset_status::Column as C;
        let _turn = self.turn().await;
        let mut q = DatasetStatus::update_many()
            .col_expr(C::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(C::LeaseUntil, Expr::value(Option::<NaiveDateTime>::None));
        if let Some(waiting) = waiting {
            q = q.col_expr(C::Waiting, Expr::value(waiting.map(str::to_owned)));
        }
        q.filter(C::Name.eq(lease.dataset.as_str()))
            .filter(C::LeaseOwner.eq(lease.owner.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records what of a dataset waited for budget in the run that just worked on it
    /// (`None`: nothing); writes only when that changed (and, should another process change
    /// it between the read and the write, only if it still differs).
    pub async fn set_waiting(&self, name: &DatasetName, waiting: Option<&str>) -> Result<()> {
        use dataset_status::Column as C;
        use sea_orm::Condition;
        use sea_orm::QuerySelect;
        // Read first: on SQLite even an UPDATE that changes nothing waits for the write lock,
        // behind whichever dataset's bulk write holds it.
        let stored: Option<Option<String>> = DatasetStatus::find()
            .select_only()
            .column(C::Waiting)
            .filter(C::Name.eq(name.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        if stored.is_none_or(|w| w.as_deref() == waiting) {
            return Ok(());
        }
        let changed = match waiting {
            Some(w) => Condition::any()
                .add(C::Waiting.is_null())
                .add(C::Waiting.ne(w)),
            None => Condition::all().add(C::Waiting.is_not_null()),
        };
        let _turn = self.turn().await;
        DatasetStatus::update_many()
            .col_expr(C::Waiting, Expr::value(waiting.map(str::to_owned)))
            .filter(C::Name.eq(name.as_str()))
            .filter(changed)
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
