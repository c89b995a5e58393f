//! The SQLite store's kf accounts: adds, changes, head images, invitations and online
//! state ([`KfStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl KfStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip(self, kf), fields(kf_account = %kf.kf_account))]
    async fn add_kf(&self, appid: &str, kf: NewKf) -> StoreResult<Kf> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            let next_id: Option<i64> = conn
                .prepare_cached("SELECT next_kf_id FROM apps WHERE appid = ?1")
                .and_then(|mut stmt| stmt.query_row([&appid], |row| row.get(0)).optional())
                .map_err(internal)?;
            let Some(kf_id) = next_id else {
                return Err(StoreError::NotFound);
            };
            let taken = select_kf(conn, &appid, kf.kf_account.as_str())?.is_some();
            rules::may_add_kf(
                taken,
                count(
                    conn,
                    "SELECT COUNT(*) FROM kf_accounts WHERE \
                appid = ?1",
                    &appid,
                )?,
            )?;
            conn.prepare_cached(
                "INSERT INTO kf_accounts (appid, kf_id, kf_account, nickname, kf_openid, \
                    created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    appid,
                    kf_id,
                    kf.kf_account.as_str(),
                    kf.nickname.as_str(),
                    kf.kf_openid,
                    kf.created_at
                ])
            })
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Rejected(ErrCode::KfAccountExists)
                } else {
                    internal(e)
                }
            })?;
            conn.prepare_cached("UPDATE apps SET next_kf_id = ?2 WHERE appid = ?1")
                .and_then(|mut stmt| stmt.execute(params![appid, kf_id + 1]))
                .map_err(internal)?;
            let record = rules::new_kf_record(kf_id, kf);
            let cached = record.clone();
            Ok((record, move |cache: &mut Cache| {
                if let Some(list) = cache.kfs_mut(&appid) {
                    list.push(cached);
                }
            }))
        })
        .await
    }

    async fn update_kf(
        &self,
        appid: &str,
        account: &KfAccount,
        nickname: &Nickname,
    ) -> StoreResult<()> {
        let (appid, account, nickname) = (
            appid.to_owned(),
            account.as_str().to_owned(),
            nickname.as_str().to_owned(),
        );
        // The hot path of a busy server: one statement, no savepoint, and no RETURNING
        // (SQLite gathers returned rows in a temporary table).
        self.write_one(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE kf_accounts SET nickname = ?3 WHERE appid = ?1 AND kf_account = ?2",
                )
                .and_then(|mut stmt| stmt.execute(params![appid, account, nickname]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            }
            Ok(((), move |cache: &mut Cache| {
                if let Some(kf) = cache.kf_by_account_mut(&appid, &account) {
                    kf.nickname = nickname;
                }
            }))
        })
        .await
    }

    async fn delete_kf(&self, appid: &str, target: &Target) -> StoreResult<()> {
        let appid = appid.to_owned();
        let target = target.clone();
        self.write(move |conn| {
            let (sql, key) = match &target {
                Target::Account(account) => (
                    "DELETE FROM kf_accounts WHERE appid = ?1 AND kf_account = ?2 RETURNING kf_id",
                    account.as_str(),
                ),
                Target::OpenId(openid) => (
                    "DELETE FROM kf_accounts WHERE appid = ?1 AND kf_openid = ?2 RETURNING kf_id",
                    openid.as_str(),
                ),
            };
            let kf_id: Option<i64> = conn
                .prepare_cached(sql)
                .and_then(|mut stmt| {
                    stmt.query_row(params![appid, key], |row| row.get(0))
                        .optional()
                })
                .map_err(internal)?;
            let Some(kf_id) = kf_id else {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            };
            Ok(((), move |cache: &mut Cache| {
                if let Some(list) = cache.kfs_mut(&appid) {
                    list.retain(|kf| kf.kf_id != kf_id);
                }
            }))
        })
        .await
    }

    async fn kfs_versioned(&self, appid: &str) -> StoreResult<(Arc<Vec<Kf>>, Option<u64>)> {
        self.read(|cache| {
            cache
                .apps
                .get(appid)
                .map(|entry| (Arc::clone(&entry.kfs), Some(entry.version)))
        })
        .ok_or(StoreError::NotFound)
    }

    async fn kfs(&self, appid: &str) -> StoreResult<Arc<Vec<Kf>>> {
        self.read(|cache| cache.apps.get(appid).map(|entry| Arc::clone(&entry.kfs)))
            .ok_or(StoreError::NotFound)
    }

    async fn set_kf_headimg(
        &self,
        appid: &str,
        account: &KfAccount,
        jpeg: Bytes,
    ) -> StoreResult<i64> {
        let (appid, account) = (appid.to_owned(), account.as_str().to_owned());
        self.write(move |conn| {
            let Some(kf) = select_kf(conn, &appid, &account)? else {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            };
            let version = kf.headimg_version.unwrap_or(0) + 1;
            conn.prepare_cached(
                "INSERT INTO kf_headimgs (appid, kf_id, version, jpeg) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (appid, kf_id) DO UPDATE SET version = excluded.version, jpeg = \
                     excluded.jpeg",
            )
            .and_then(|mut stmt| stmt.execute(params![appid, kf.kf_id, version, &jpeg[..]]))
            .map_err(internal)?;
            conn.prepare_cached(
                "UPDATE kf_accounts SET headimg_version = ?3 WHERE appid = ?1 \
                AND kf_id = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![appid, kf.kf_id, version]))
            .map_err(internal)?;
            Ok((version, move |cache: &mut Cache| {
                if let Some(kf) = cache.kf_mut(&appid, kf.kf_id) {
                    kf.headimg_version = Some(version);
                }
            }))
        })
        .await
    }

    async fn kf_headimg(
        &self,
        appid: &str,
        kf_id: i64,
        version: i64,
    ) -> StoreResult<Option<Bytes>> {
        let (images, appid) = (Arc::clone(&self.images), appid.to_owned());
        tokio::task::spawn_blocking(move || {
            let conn = images
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let jpeg: Option<Vec<u8>> = conn
                .prepare_cached(
                    "SELECT jpeg FROM kf_headimgs WHERE appid = ?1 AND kf_id = ?2 AND version = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![appid, kf_id, version], |row| row.get(0))
                        .optional()
                })
                .map_err(internal)?;
            Ok(jpeg.map(Bytes::from))
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    async fn invite_kf(&self, appid: &str, invitation: NewInvitation) -> StoreResult<()> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            let wx = invitation.invite_wx.as_str();
            let Some(kf) = select_kf(conn, &appid, invitation.kf_account.as_str())? else {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            };
            let mut others = conn
                .prepare_cached(&format!(
                    "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = ?1 AND (kf_wx = ?2 OR \
                        invite_wx = ?2)"
                ))
                .map_err(internal)?;
            let others = others
                .query_map(params![appid, wx], |row| columns::kf(row, 0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Kf>>>())
                .map_err(internal)?;
            let bound = bound_count(conn, wx)?;
            let made =
                rules::invite(&kf, &others, bound, &invitation).map_err(StoreError::Rejected)?;
            write_invitation(conn, &appid, kf.kf_id, None, Some(&made))?;
            Ok(((), move |cache: &mut Cache| {
                if let Some(kf) = cache.kf_mut(&appid, kf.kf_id) {
                    kf.invitation = Some(made);
                }
            }))
        })
        .await
    }

    async fn answer_invitation(&self, appid: &str, answer: InvitationAnswer) -> StoreResult<Kf> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            if !app_exists(conn, &appid)? {
                return Err(StoreError::NotFound);
            }
            let Some(kf) = select_kf(conn, &appid, answer.kf_account.as_str())? else {
                return Err(StoreError::NotFound);
            };
            let bound = bound_count(conn, rules::pending_invitee(&kf, answer.now)?)?;
            let kf = rules::answered(kf, &answer, bound)?;
            write_invitation(
                conn,
                &appid,
                kf.kf_id,
                kf.kf_wx.as_deref(),
                kf.invitation.as_ref(),
            )?;
            let cached = kf.clone();
            Ok((kf, move |cache: &mut Cache| {
                if let Some(slot) = cache.kf_mut(&appid, cached.kf_id) {
                    *slot = cached;
                }
            }))
        })
        .await
    }

    async fn set_kf_online(
        &self,
        appid: &str,
        account: &KfAccount,
        status: i64,
    ) -> StoreResult<Kf> {
        let (appid, account) = (appid.to_owned(), account.as_str().to_owned());
        self.write(move |conn| {
            let Some(mut kf) = select_kf(conn, &appid, &account)? else {
                return Err(StoreError::NotFound);
            };
            conn.prepare_cached(
                "UPDATE kf_accounts SET online_status = ?3 WHERE appid = ?1 AND kf_id = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![appid, kf.kf_id, status]))
            .map_err(internal)?;
            kf.online_status = status;
            let cached = kf.clone();
            Ok((kf, move |cache: &mut Cache| {
                if let Some(slot) = cache.kf_mut(&appid, cached.kf_id) {
                    *slot = cached;
                }
            }))
        })
        .await
    }
}

pub(super) fn select_kf(conn: &Connection, appid: &str, account: &str) -> StoreResult<Option<Kf>> {
    conn.prepare_cached(&format!(
        "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = ?1 AND kf_account = ?2"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![appid, account], |row| columns::kf(row, 0))
            .optional()
    })
    .map_err(internal)
}

pub(super) fn bound_count(conn: &Connection, wx: &str) -> StoreResult<usize> {
    count(
        conn,
        "SELECT COUNT(*) FROM kf_accounts WHERE kf_wx = ?1",
        wx,
    )
}

pub(super) fn write_invitation(
    conn: &Connection,
    appid: &str,
    kf_id: i64,
    kf_wx: Option<&str>,
    invitation: Option<&Invitation>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE kf_accounts SET kf_wx = ?3, invite_wx = ?4, invite_expire_time = ?5, \
            invite_state = ?6 \
         WHERE appid = ?1 AND kf_id = ?2",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            appid,
            kf_id,
            kf_wx,
            invitation.map(|i| i.invite_wx.as_str()),
            invitation.map(|i| i.expire_time),
            invitation.map(|i| i.state.as_str()),
        ])
    })
    .map_err(internal)?;
    Ok(())
}
