//! The PostgreSQL store's apps ([`AppStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl AppStore for PostgresStore {
    async fn create_app(&self, app: App) -> StoreResult<Arc<App>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Apps and platforms share one id space: one creation per id at a time.
        lock(&tx, &format!("id:{}", app.appid)).await?;
        let inserted = insert_app(&tx, &app, FIRST_KF_ID).await.map_err(|e| {
            conflict_or(e, || {
                "the appid, WeChat ID or original id is taken".to_owned()
            })
        })?;
        if inserted == 0 {
            return Err(StoreError::Conflict(
                "the appid is a third-party platform's".to_owned(),
            ));
        }
        tx.commit().await.map_err(pg)?;
        Ok(Arc::new(app))
    }

    async fn apps(&self) -> StoreResult<Vec<AppSummary>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {APP_COLUMNS}, (SELECT count(*) FROM kf_accounts k WHERE k.appid = \
                        a.appid) \
                     FROM apps a ORDER BY created_at, appid COLLATE \"C\""
                ),
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AppSummary {
                    app: Arc::new(columns::app(row, 0)?),
                    kf_count: count_of(row.try_get(9)?),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg)
    }

    async fn app(&self, appid: &str) -> StoreResult<Option<Arc<App>>> {
        if !storable(appid) {
            return Ok(None);
        }
        self.query_opt(
            &format!("SELECT {APP_COLUMNS} FROM apps WHERE appid = $1"),
            &[&appid],
        )
        .await?
        .map(|row| columns::app(&row, 0).map(Arc::new))
        .transpose()
        .map_err(pg)
    }

    async fn update_app(&self, appid: &str, patch: AppPatch) -> StoreResult<Arc<App>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let current = tx
            .query_opt(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE appid = $1 FOR UPDATE"),
                &[&appid],
            )
            .await
            .map_err(pg)?
            .ok_or(StoreError::NotFound)?;
        let current = columns::app(&current, 0).map_err(pg)?;
        let (next, renamed) = rules::patched(&current, patch);
        if renamed
            && tx
                .query_opt(
                    "SELECT 1 FROM kf_accounts WHERE appid = $1 LIMIT 1",
                    &[&appid],
                )
                .await
                .map_err(pg)?
                .is_some()
        {
            return Err(rules::rename_refused());
        }
        tx.execute(
            "UPDATE apps SET wechat_id = $2, original_id = $3, account_type = $4, verified = $5, \
             new_kf_enabled = $6, settings = $7 WHERE appid = $1",
            &[
                &next.appid,
                &next.wechat_id,
                &next.original_id,
                &next.account_type.as_str(),
                &next.verified,
                &next.new_kf_enabled,
                &Json(&next.settings),
            ],
        )
        .await
        .map_err(|e| conflict_or(e, || "the WeChat ID or original id is taken".to_owned()))?;
        tx.commit().await.map_err(pg)?;
        Ok(Arc::new(next))
    }

    async fn set_app_secret(&self, appid: &str, secret_hash: Digest) -> StoreResult<()> {
        let changed = self
            .execute(
                "UPDATE apps SET secret_hash = $2 WHERE appid = $1",
                &[&appid, &&secret_hash[..]],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_app(&self, appid: &str) -> StoreResult<()> {
        self.delete_owner("DELETE FROM apps WHERE appid = $1", appid)
            .await
    }
}
