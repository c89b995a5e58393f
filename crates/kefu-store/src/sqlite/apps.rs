//! The SQLite store's apps ([`AppStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl AppStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(appid = %app.appid))]
    async fn create_app(&self, app: App) -> StoreResult<Arc<App>> {
        let app = Arc::new(app);
        let stored = Arc::clone(&app);
        self.write(move |conn| {
            if component_exists(conn, &app.appid)? {
                return Err(StoreError::Conflict(
                    "the appid is a third-party \
                    platform's"
                        .to_owned(),
                ));
            }
            insert_app(conn, &app, FIRST_KF_ID).map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("the appid, WeChat ID or original id is taken".to_owned())
                } else {
                    internal(e)
                }
            })?;
            let app = Arc::clone(&app);
            Ok(((), move |cache: &mut Cache| {
                cache.apps.insert(app.appid.clone(), AppEntry::new(app));
            }))
        })
        .await?;
        Ok(stored)
    }

    async fn apps(&self) -> StoreResult<Vec<AppSummary>> {
        let mut apps: Vec<AppSummary> = self.read(|cache| {
            cache
                .apps
                .values()
                .map(|entry| AppSummary {
                    app: Arc::clone(&entry.app),
                    kf_count: entry.kfs.len(),
                })
                .collect()
        });
        apps.sort_by(|a, b| {
            (a.app.created_at, &a.app.appid).cmp(&(b.app.created_at, &b.app.appid))
        });
        Ok(apps)
    }

    async fn app(&self, appid: &str) -> StoreResult<Option<Arc<App>>> {
        Ok(self.read(|cache| cache.apps.get(appid).map(|entry| Arc::clone(&entry.app))))
    }

    #[tracing::instrument(level = "debug", skip(self, patch))]
    async fn update_app(&self, appid: &str, patch: AppPatch) -> StoreResult<Arc<App>> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            // Read inside the write job: the writer is the only one changing apps, so the
            // row (and with it the secret hash) is current.
            let current = conn
                .prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE appid = ?1"))
                .and_then(|mut stmt| {
                    stmt.query_row([&appid], |row| columns::app(row, 0))
                        .optional()
                })
                .map_err(internal)?
                .ok_or(StoreError::NotFound)?;
            let (next, renamed) = rules::patched(&current, patch);
            if renamed {
                let has_accounts = conn
                    .prepare_cached("SELECT 1 FROM kf_accounts WHERE appid = ?1 LIMIT 1")
                    .and_then(|mut stmt| stmt.exists([&next.appid]))
                    .map_err(internal)?;
                if has_accounts {
                    return Err(rules::rename_refused());
                }
            }
            conn.prepare_cached(
                "UPDATE apps SET wechat_id = ?2, original_id = ?3, account_type = ?4, verified \
                    = ?5, \
                 new_kf_enabled = ?6, settings = ?7 WHERE appid = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    next.appid,
                    next.wechat_id,
                    next.original_id,
                    next.account_type.as_str(),
                    next.verified,
                    next.new_kf_enabled,
                    json_text(&next.settings),
                ])
            })
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("the WeChat ID or original id is taken".to_owned())
                } else {
                    internal(e)
                }
            })?;
            let next = Arc::new(next);
            let cached = Arc::clone(&next);
            Ok((next, move |cache: &mut Cache| {
                if let Some(entry) = cache.apps.get_mut(&cached.appid) {
                    entry.app = cached;
                }
            }))
        })
        .await
    }

    async fn set_app_secret(&self, appid: &str, secret_hash: Digest) -> StoreResult<()> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE apps SET secret_hash = ?2 WHERE appid = ?1")
                .and_then(|mut stmt| stmt.execute(params![appid, secret_hash]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(((), move |cache: &mut Cache| {
                if let Some(entry) = cache.apps.get_mut(&appid) {
                    Arc::make_mut(&mut entry.app).secret_hash = secret_hash;
                }
            }))
        })
        .await
    }

    async fn delete_app(&self, appid: &str) -> StoreResult<()> {
        let owner = appid.to_owned();
        let appid = appid.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("DELETE FROM apps WHERE appid = ?1")
                .and_then(|mut stmt| stmt.execute([&appid]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            forget_owner(conn, &appid)?;
            Ok(((), move |cache: &mut Cache| cache.remove_owner(&appid)))
        })
        .await?;
        self.forget_in_memory(&owner);
        Ok(())
    }
}

/// Writes an app's row, its next kf_id with it.
pub(super) fn insert_app(conn: &Connection, app: &App, next_kf_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO apps ({APP_COLUMNS}, next_kf_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        app.appid,
        app.wechat_id,
        app.original_id,
        app.account_type.as_str(),
        app.verified,
        app.new_kf_enabled,
        app.secret_hash,
        app.created_at,
        json_text(&app.settings),
        next_kf_id,
    ])
    .map(drop)
}
