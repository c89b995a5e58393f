//! The SQLite store's export and import ([`SnapshotStore`]).

use super::*;
use crate::IssuedTicket;
use crate::roles::*;

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // Inside a write job: no change can land halfway through.
        let cache = Arc::clone(&self.cache);
        self.write(move |conn| {
            let cache = cache
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut next_ids = conn
                .prepare("SELECT appid, next_kf_id FROM apps")
                .map_err(internal)?;
            let next_ids: HashMap<String, i64> = next_ids
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(internal)?;
            let mut images = conn
                .prepare("SELECT appid, kf_id, jpeg FROM kf_headimgs")
                .map_err(internal)?;
            let mut images: HashMap<(String, i64), Vec<u8>> = images
                .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))
                .and_then(|rows| rows.collect())
                .map_err(internal)?;
            let mut apps: Vec<AppSnapshot> = cache
                .apps
                .values()
                .map(|entry| AppSnapshot {
                    app: (*entry.app).clone(),
                    next_kf_id: next_ids
                        .get(&entry.app.appid)
                        .copied()
                        .unwrap_or(FIRST_KF_ID),
                    kf_accounts: entry
                        .kfs
                        .iter()
                        .map(|kf| KfSnapshot {
                            headimg: images
                                .remove(&(entry.app.appid.clone(), kf.kf_id))
                                .map(Bytes::from),
                            kf: kf.clone(),
                        })
                        .collect(),
                    fans: Vec::new(),
                    history: Vec::new(),
                })
                .collect();
            fans::snapshot_fans(conn, &mut apps)?;
            let components: Vec<Component> = cache.components.values().cloned().collect();
            let authorizations: Vec<Authorization> =
                cache.authorizations.values().cloned().collect();
            let snapshot = rules::snapshot(apps, components, authorizations);
            Ok((snapshot, |_: &mut Cache| {}))
        })
        .await
    }

    async fn replace(
        &self,
        snapshot: Snapshot,
        tickets: Vec<IssuedTicket>,
        clock_offset: i64,
    ) -> StoreResult<()> {
        self.replace_all(snapshot, tickets, clock_offset).await
    }

    async fn restore(&self, snapshot: Snapshot) -> StoreResult<()> {
        snapshot.check()?;
        self.write(move |conn| {
            let held: i64 = conn
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM apps) + (SELECT COUNT(*) FROM \
                    components)",
                    [],
                    |row| row.get(0),
                )
                .map_err(internal)?;
            if held > 0 {
                return Err(StoreError::Conflict("the store is not empty".to_owned()));
            }
            insert_snapshot(conn, &snapshot)?;
            let fresh = load(conn).map_err(internal)?;
            Ok(((), move |cache: &mut Cache| *cache = fresh))
        })
        .await
    }
}

impl SqliteStore {
    async fn replace_all(
        &self,
        snapshot: Snapshot,
        tickets: Vec<IssuedTicket>,
        clock_offset: i64,
    ) -> StoreResult<()> {
        snapshot.check()?;
        rules::check_tickets(&snapshot, &tickets)?;
        // No housekeeping round writes counters or calls of before the replace after it.
        let _one_at_a_time = self.maintaining.lock().await;
        let stored = Arc::clone(&self.clock_offset);
        self.write(move |conn| {
            for table in rules::STATE_TABLES {
                conn.execute(&format!("DELETE FROM {table}"), [])
                    .map_err(internal)?;
            }
            conn.execute("UPDATE log_usage SET rows = 0, bytes = 0, dropped = 0", [])
                .map_err(internal)?;
            insert_snapshot(conn, &snapshot)?;
            for ticket in &tickets {
                conn.prepare_cached(
                    "INSERT INTO component_tickets (hash, component_appid, \
                    expires_at) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        ticket.hash,
                        ticket.component_appid,
                        ticket.expires_at
                    ])
                })
                .map_err(internal)?;
            }
            conn.execute(
                "INSERT INTO clock (id, offset_secs) VALUES (1, ?1)",
                params![clock_offset],
            )
            .map_err(internal)?;
            let fresh = load(conn).map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                *cache = fresh;
                stored.store(clock_offset, Ordering::Relaxed);
            }))
        })
        .await?;
        self.counters().clear();
        self.log.clear();
        Ok(())
    }
}

/// Inserts the snapshot's rows (the store holds none of them).
fn insert_snapshot(conn: &Connection, snapshot: &Snapshot) -> StoreResult<()> {
    for entry in &snapshot.apps {
        let app = &entry.app;
        apps::insert_app(conn, app, entry.next_kf_id).map_err(|e| restore_error(e, &app.appid))?;
        for account in &entry.kf_accounts {
            let kf = &account.kf;
            let invitation = kf.invitation.as_ref();
            conn.prepare_cached(&format!(
                "INSERT INTO kf_accounts (appid, {KF_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    app.appid,
                    kf.kf_id,
                    kf.kf_account,
                    kf.nickname,
                    kf.kf_openid,
                    kf.headimg_version,
                    kf.kf_wx,
                    invitation.map(|i| i.invite_wx.as_str()),
                    invitation.map(|i| i.expire_time),
                    invitation.map(|i| i.state.as_str()),
                    kf.online_status,
                    kf.accepted_case,
                    kf.created_at,
                ])
            })
            .map_err(|e| restore_error(e, &kf.kf_account))?;
            if let (Some(jpeg), Some(version)) = (&account.headimg, kf.headimg_version) {
                conn.prepare_cached(
                    "INSERT INTO kf_headimgs (appid, kf_id, version, \
                    jpeg) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut stmt| stmt.execute(params![app.appid, kf.kf_id, version, &jpeg[..]]))
                .map_err(internal)?;
            }
        }
    }
    for component in &snapshot.components {
        platforms::insert_component(conn, component)
            .map_err(|e| restore_error(e, &component.component_appid))?;
    }
    for auth in &snapshot.authorizations {
        conn.prepare_cached(&format!(
            "INSERT INTO authorizations ({AUTH_COLUMNS}) \
            VALUES (?1, ?2, ?3, ?4, ?5)"
        ))
        .and_then(|mut stmt| {
            stmt.execute(params![
                auth.component_appid,
                auth.appid,
                json_text(&auth.funcscopes),
                auth.refresh_hash,
                json_text(&auth.previous),
            ])
        })
        .map_err(|e| restore_error(e, &auth.appid))?;
    }
    for entry in &snapshot.apps {
        fans::restore_fans(conn, entry)?;
    }
    Ok(())
}
