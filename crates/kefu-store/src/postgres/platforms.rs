//! The PostgreSQL store's third-party platforms, their tickets and authorizations
//! ([`PlatformStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl PlatformStore for PostgresStore {
    async fn create_component(&self, component: Component) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock(&tx, &format!("id:{}", component.component_appid)).await?;
        let inserted = insert_component(&tx, &component)
            .await
            .map_err(|e| conflict_or(e, || "the component_appid is taken".to_owned()))?;
        if inserted == 0 {
            return Err(StoreError::Conflict(
                "the appid is an official account's".to_owned(),
            ));
        }
        tx.commit().await.map_err(pg)
    }

    async fn components(&self) -> StoreResult<Vec<(Component, Vec<Authorization>)>> {
        let client = self.client().await?;
        let components = client
            .query(
                &format!(
                    "SELECT {COMPONENT_COLUMNS} FROM components \
                     ORDER BY created_at, component_appid COLLATE \"C\""
                ),
                &[],
            )
            .await
            .map_err(pg)?;
        let auths = client
            .query(
                &format!("SELECT {AUTH_COLUMNS} FROM authorizations ORDER BY appid COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(columns::authorization)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg)?;
        components
            .iter()
            .map(|row| {
                let component = columns::component(row).map_err(pg)?;
                let mine = auths
                    .iter()
                    .filter(|a| a.component_appid == component.component_appid)
                    .cloned()
                    .collect();
                Ok((component, mine))
            })
            .collect()
    }

    async fn component(&self, component_appid: &str) -> StoreResult<Option<Component>> {
        if !storable(component_appid) {
            return Ok(None);
        }
        self.query_opt(
            &format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE component_appid = $1"),
            &[&component_appid],
        )
        .await?
        .map(|row| columns::component(&row))
        .transpose()
        .map_err(pg)
    }

    async fn delete_component(&self, component_appid: &str) -> StoreResult<()> {
        self.delete_owner(
            "DELETE FROM components WHERE component_appid = $1",
            component_appid,
        )
        .await
    }

    async fn add_ticket(
        &self,
        component_appid: &str,
        hash: Digest,
        expires_at: i64,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO component_tickets (hash, component_appid, expires_at) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM components WHERE \
                     component_appid = $2)",
                &[&&hash[..], &component_appid, &expires_at],
            )
            .await
            .map_err(|e| {
                // The platform was deleted meanwhile.
                if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::NotFound
                } else {
                    pg(e)
                }
            })?;
        if inserted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn ticket(&self, hash: &Digest) -> StoreResult<Option<(String, i64)>> {
        self.query_opt(
            "SELECT component_appid, expires_at FROM component_tickets WHERE hash = $1",
            &[&&hash[..]],
        )
        .await?
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
        .map_err(pg)
    }

    async fn authorize(&self, authorization: Authorization) -> StoreResult<()> {
        let client = self.client().await?;
        insert_authorization(&client, &authorization, true)
            .await
            .map_err(|e| {
                if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::NotFound
                } else {
                    pg(e)
                }
            })
            .map(drop)
    }

    async fn authorization(
        &self,
        component_appid: &str,
        appid: &str,
    ) -> StoreResult<Option<Authorization>> {
        if !storable(component_appid) || !storable(appid) {
            return Ok(None);
        }
        self.query_opt(
            &format!(
                "SELECT {AUTH_COLUMNS} FROM authorizations WHERE component_appid = $1 AND \
                    appid = $2"
            ),
            &[&component_appid, &appid],
        )
        .await?
        .map(|row| columns::authorization(&row))
        .transpose()
        .map_err(pg)
    }

    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<()> {
        if !storable(&rotation.component_appid) || !storable(&rotation.appid) {
            return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let Some(row) = tx
            .query_opt(
                &format!(
                    "SELECT {AUTH_COLUMNS} FROM authorizations WHERE component_appid = $1 AND \
                        appid = $2 FOR UPDATE"
                ),
                &[&rotation.component_appid, &rotation.appid],
            )
            .await
            .map_err(pg)?
        else {
            return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid));
        };
        let mut auth = columns::authorization(&row).map_err(pg)?;
        rules::rotate(&mut auth, &rotation)?;
        insert_authorization(&tx, &auth, true).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}
