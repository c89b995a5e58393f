//! The PostgreSQL store's export and import ([`SnapshotStore`]).

use super::*;
use crate::IssuedTicket;
use crate::roles::*;

#[async_trait]
impl SnapshotStore for PostgresStore {
    async fn snapshot(&self) -> StoreResult<Snapshot> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let mut apps = Vec::new();
        let mut index = HashMap::new();
        for row in tx
            .query(&format!("SELECT {APP_COLUMNS}, next_kf_id FROM apps"), &[])
            .await
            .map_err(pg)?
        {
            let app = columns::app(&row, 0).map_err(pg)?;
            index.insert(app.appid.clone(), apps.len());
            apps.push(AppSnapshot {
                next_kf_id: row.try_get(9).map_err(pg)?,
                app,
                kf_accounts: Vec::new(),
                fans: Vec::new(),
                history: Vec::new(),
            });
        }
        for row in tx
            .query(
                &format!(
                    "SELECT k.appid, {}, h.jpeg FROM kf_accounts k LEFT JOIN kf_headimgs h \
                     ON h.appid = k.appid AND h.kf_id = k.kf_id",
                    columns_of("k", KF_COLUMNS)
                ),
                &[],
            )
            .await
            .map_err(pg)?
        {
            let appid: &str = row.try_get(0).map_err(pg)?;
            let kf = columns::kf(&row, 1).map_err(pg)?;
            let headimg: Option<Vec<u8>> = row.try_get(13).map_err(pg)?;
            if let Some(&at) = index.get(appid) {
                apps[at].kf_accounts.push(KfSnapshot {
                    kf,
                    headimg: headimg.map(Bytes::from),
                });
            }
        }
        fans::snapshot_fans(&tx, &mut apps).await?;
        let components = tx
            .query(&format!("SELECT {COMPONENT_COLUMNS} FROM components"), &[])
            .await
            .map_err(pg)?
            .iter()
            .map(columns::component)
            .collect::<Result<_, _>>()
            .map_err(pg)?;
        let authorizations = tx
            .query(&format!("SELECT {AUTH_COLUMNS} FROM authorizations"), &[])
            .await
            .map_err(pg)?
            .iter()
            .map(columns::authorization)
            .collect::<Result<_, _>>()
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        let snapshot = rules::snapshot(apps, components, authorizations);
        Ok(snapshot)
    }

    async fn replace(
        &self,
        snapshot: Snapshot,
        tickets: Vec<IssuedTicket>,
        clock_offset: i64,
    ) -> StoreResult<()> {
        snapshot.check()?;
        rules::check_tickets(&snapshot, &tickets)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Every table at once, exclusively: other instances' requests wait for the
        // commit, and see the store before or after, never between.
        tx.batch_execute(&format!(
            "LOCK TABLE {tables}, log_usage IN ACCESS EXCLUSIVE MODE; TRUNCATE {tables}; \
             UPDATE log_usage SET rows = 0, bytes = 0, dropped = 0",
            tables = rules::STATE_TABLES.join(", ")
        ))
        .await
        .map_err(pg)?;
        insert_snapshot(&tx, &snapshot).await?;
        for ticket in &tickets {
            tx.execute(
                "INSERT INTO component_tickets (hash, component_appid, expires_at) VALUES \
                 ($1, $2, $3)",
                &[
                    &&ticket.hash[..],
                    &ticket.component_appid,
                    &ticket.expires_at,
                ],
            )
            .await
            .map_err(pg)?;
        }
        tx.execute(
            "INSERT INTO clock (id, offset_secs) VALUES (1, $1)",
            &[&clock_offset],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        self.log.clear();
        Ok(())
    }

    async fn restore(&self, snapshot: Snapshot) -> StoreResult<()> {
        snapshot.check()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // No app or platform may appear while the snapshot loads.
        tx.batch_execute("LOCK TABLE apps, components IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(pg)?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM apps) + (SELECT count(*) FROM components)",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(pg)?;
        if held > 0 {
            return Err(StoreError::Conflict("the store is not empty".to_owned()));
        }
        insert_snapshot(&tx, &snapshot).await?;
        tx.commit().await.map_err(pg)
    }
}

/// Inserts the snapshot's rows (the store holds none of them).
async fn insert_snapshot(
    tx: &deadpool_postgres::Transaction<'_>,
    snapshot: &Snapshot,
) -> StoreResult<()> {
    for entry in &snapshot.apps {
        let app = &entry.app;
        // `Snapshot::check` refused an id that is both an app and a platform.
        insert_app(tx, app, entry.next_kf_id)
            .await
            .map_err(|e| conflict_or(e, || format!("{}: taken", app.appid)))?;
        for account in &entry.kf_accounts {
            let kf = &account.kf;
            let invitation = kf.invitation.as_ref();
            tx.execute(
                &format!(
                    "INSERT INTO kf_accounts (appid, {KF_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ),
                &[
                    &app.appid,
                    &kf.kf_id,
                    &kf.kf_account,
                    &kf.nickname,
                    &kf.kf_openid,
                    &kf.headimg_version,
                    &kf.kf_wx,
                    &invitation.map(|i| i.invite_wx.as_str()),
                    &invitation.map(|i| i.expire_time),
                    &invitation.map(|i| i.state.as_str()),
                    &kf.online_status,
                    &kf.accepted_case,
                    &kf.created_at,
                ],
            )
            .await
            .map_err(|e| conflict_or(e, || format!("{}: taken", kf.kf_account)))?;
            if let (Some(jpeg), Some(version)) = (&account.headimg, kf.headimg_version) {
                tx.execute(
                    "INSERT INTO kf_headimgs (appid, kf_id, version, jpeg) VALUES ($1, \
                        $2, $3, $4)",
                    &[&app.appid, &kf.kf_id, &version, &&jpeg[..]],
                )
                .await
                .map_err(pg)?;
            }
        }
    }
    for entry in &snapshot.apps {
        fans::restore_fans(tx, entry).await?;
    }
    for component in &snapshot.components {
        insert_component(tx, component)
            .await
            .map_err(|e| conflict_or(e, || format!("{}: taken", component.component_appid)))?;
    }
    for auth in &snapshot.authorizations {
        insert_authorization(tx, auth, false).await.map_err(|e| {
            conflict_or(e, || {
                format!(
                    "{} on {}: unknown app or platform",
                    auth.appid, auth.component_appid
                )
            })
        })?;
    }
    Ok(())
}
