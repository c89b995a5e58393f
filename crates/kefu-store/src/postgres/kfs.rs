//! The PostgreSQL store's kf accounts: adds, changes, head images, invitations and online
//! state ([`KfStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl KfStore for PostgresStore {
    async fn add_kf(&self, appid: &str, kf: NewKf) -> StoreResult<Kf> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The app's row lock makes adds to one app take turns: the count below stays true
        // until the commit.
        let kf_id: i64 = tx
            .query_opt(
                "SELECT next_kf_id FROM apps WHERE appid = $1 FOR UPDATE",
                &[&appid],
            )
            .await
            .map_err(pg)?
            .ok_or(StoreError::NotFound)?
            .try_get(0)
            .map_err(pg)?;
        let row = tx
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE kf_account = $2) FROM kf_accounts \
                    WHERE appid = $1",
                &[&appid, &kf.kf_account.as_str()],
            )
            .await
            .map_err(pg)?;
        let (total, same): (i64, i64) = (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?);
        rules::may_add_kf(same > 0, count_of(total))?;
        tx.execute(
            "INSERT INTO kf_accounts (appid, kf_id, kf_account, nickname, kf_openid, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &appid,
                &kf_id,
                &kf.kf_account.as_str(),
                &kf.nickname.as_str(),
                &kf.kf_openid,
                &kf.created_at,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Rejected(ErrCode::KfAccountExists)
            } else {
                pg(e)
            }
        })?;
        tx.execute(
            "UPDATE apps SET next_kf_id = $2 WHERE appid = $1",
            &[&appid, &(kf_id + 1)],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(rules::new_kf_record(kf_id, kf))
    }

    async fn update_kf(
        &self,
        appid: &str,
        account: &KfAccount,
        nickname: &Nickname,
    ) -> StoreResult<()> {
        // Batched with the concurrent changes: one statement, one commit for all.
        let changed = self
            .batches
            .set_nickname(
                appid.to_owned(),
                account.as_str().to_owned(),
                nickname.as_str().to_owned(),
            )
            .await?;
        if !changed {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        }
        Ok(())
    }

    async fn delete_kf(&self, appid: &str, target: &Target) -> StoreResult<()> {
        let (sql, key) = match target {
            Target::Account(account) => (
                "DELETE FROM kf_accounts WHERE appid = $1 AND kf_account = $2",
                account.as_str(),
            ),
            Target::OpenId(openid) => (
                "DELETE FROM kf_accounts WHERE appid = $1 AND kf_openid = $2",
                openid.as_str(),
            ),
        };
        let served = match target {
            Target::Account(_) => "session_kf = $2",
            Target::OpenId(_) => {
                "session_kf = (SELECT kf_account FROM kf_accounts WHERE appid = $1 AND \
                 kf_openid = $2)"
            }
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The fans it serves first, then the account (whose trigger ends their sessions):
        // the order in which a fan's change locks them, so the two never wait on each
        // other.
        tx.execute(
            &format!(
                "SELECT 1 FROM fans WHERE appid = $1 AND session = 'served' AND {served} \
                 ORDER BY openid COLLATE \"C\" FOR UPDATE"
            ),
            &[&appid, &key],
        )
        .await
        .map_err(pg)?;
        if tx.execute(sql, &[&appid, &key]).await.map_err(pg)? == 0 {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        }
        tx.commit().await.map_err(pg)
    }

    async fn kfs(&self, appid: &str) -> StoreResult<Arc<Vec<Kf>>> {
        // Batched with the concurrent reads: the app row (for NotFound) left-joined with
        // its accounts.
        self.batches
            .kfs(appid.to_owned())
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn set_kf_headimg(
        &self,
        appid: &str,
        account: &KfAccount,
        jpeg: Bytes,
    ) -> StoreResult<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let Some(kf) = Self::select_kf(&tx, appid, account.as_str(), true).await? else {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        };
        let version = kf.headimg_version.unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO kf_headimgs (appid, kf_id, version, jpeg) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (appid, kf_id) DO UPDATE SET version = excluded.version, jpeg = \
                 excluded.jpeg",
            &[&appid, &kf.kf_id, &version, &&jpeg[..]],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "UPDATE kf_accounts SET headimg_version = $3 WHERE appid = $1 AND kf_id = $2",
            &[&appid, &kf.kf_id, &version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(version)
    }

    async fn kf_headimg(
        &self,
        appid: &str,
        kf_id: i64,
        version: i64,
    ) -> StoreResult<Option<Bytes>> {
        self.query_opt(
            "SELECT jpeg FROM kf_headimgs WHERE appid = $1 AND kf_id = $2 AND version = $3",
            &[&appid, &kf_id, &version],
        )
        .await?
        .map(|row| row.try_get::<_, Vec<u8>>(0).map(Bytes::from))
        .transpose()
        .map_err(pg)
    }

    async fn invite_kf(&self, appid: &str, invitation: NewInvitation) -> StoreResult<()> {
        let wx = invitation.invite_wx.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The app's accounts and the user's bindings (across apps) hold still until the
        // commit.
        tx.execute("SELECT 1 FROM apps WHERE appid = $1 FOR UPDATE", &[&appid])
            .await
            .map_err(pg)?;
        lock(&tx, &format!("wx:{wx}")).await?;
        let Some(kf) = Self::select_kf(&tx, appid, invitation.kf_account.as_str(), false).await?
        else {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        };
        let others = tx
            .query(
                &format!(
                    "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = $1 AND (kf_wx = $2 OR \
                        invite_wx = $2)"
                ),
                &[&appid, &wx],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|row| columns::kf(row, 0))
            .collect::<Result<Vec<Kf>, _>>()
            .map_err(pg)?;
        let bound = bound_count(&tx, wx).await?;
        let made = rules::invite(&kf, &others, bound, &invitation).map_err(StoreError::Rejected)?;
        write_invitation(&tx, appid, kf.kf_id, None, Some(&made)).await?;
        tx.commit().await.map_err(pg)
    }

    async fn answer_invitation(&self, appid: &str, answer: InvitationAnswer) -> StoreResult<Kf> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        if tx
            .query_opt("SELECT 1 FROM apps WHERE appid = $1 FOR UPDATE", &[&appid])
            .await
            .map_err(pg)?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        let Some(kf) = Self::select_kf(&tx, appid, answer.kf_account.as_str(), true).await? else {
            return Err(StoreError::NotFound);
        };
        let invitee = rules::pending_invitee(&kf, answer.now)?.to_owned();
        lock(&tx, &format!("wx:{invitee}")).await?;
        let bound = bound_count(&tx, &invitee).await?;
        let kf = rules::answered(kf, &answer, bound)?;
        write_invitation(
            &tx,
            appid,
            kf.kf_id,
            kf.kf_wx.as_deref(),
            kf.invitation.as_ref(),
        )
        .await?;
        tx.commit().await.map_err(pg)?;
        Ok(kf)
    }

    async fn set_kf_online(
        &self,
        appid: &str,
        account: &KfAccount,
        status: i64,
    ) -> StoreResult<Kf> {
        let row = self
            .query_opt(
                &format!(
                    "UPDATE kf_accounts SET online_status = $3 \
                     WHERE appid = $1 AND kf_account = $2 RETURNING {KF_COLUMNS}"
                ),
                &[&appid, &account.as_str(), &status],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        columns::kf(&row, 0).map_err(pg)
    }
}

/// How many accounts `wx` is bound to, across apps.
pub(super) async fn bound_count(client: &impl GenericClient, wx: &str) -> StoreResult<usize> {
    let n: i64 = client
        .query_one("SELECT count(*) FROM kf_accounts WHERE kf_wx = $1", &[&wx])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg)?;
    Ok(count_of(n))
}

pub(super) async fn write_invitation(
    client: &impl GenericClient,
    appid: &str,
    kf_id: i64,
    kf_wx: Option<&str>,
    invitation: Option<&Invitation>,
) -> StoreResult<()> {
    client
        .execute(
            "UPDATE kf_accounts SET kf_wx = $3, invite_wx = $4, invite_expire_time = $5, \
             invite_state = $6 WHERE appid = $1 AND kf_id = $2",
            &[
                &appid,
                &kf_id,
                &kf_wx,
                &invitation.map(|i| i.invite_wx.as_str()),
                &invitation.map(|i| i.expire_time),
                &invitation.map(|i| i.state.as_str()),
            ],
        )
        .await
        .map_err(pg)
        .map(drop)
}

impl PostgresStore {
    pub(super) async fn select_kf(
        client: &impl GenericClient,
        appid: &str,
        account: &str,
        for_update: bool,
    ) -> StoreResult<Option<Kf>> {
        let sql = format!(
            "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = $1 AND kf_account = $2{}",
            if for_update { " FOR UPDATE" } else { "" }
        );
        client
            .query_opt(&sql, &[&appid, &account])
            .await
            .map_err(pg)?
            .map(|row| columns::kf(&row, 0))
            .transpose()
            .map_err(pg)
    }
}
