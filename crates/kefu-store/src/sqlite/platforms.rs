//! The SQLite store's third-party platforms, their tickets and authorizations
//! ([`PlatformStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl PlatformStore for SqliteStore {
    async fn create_component(&self, component: Component) -> StoreResult<()> {
        self.write(move |conn| {
            if app_exists(conn, &component.component_appid)? {
                return Err(StoreError::Conflict(
                    "the appid is an official account's".to_owned(),
                ));
            }
            insert_component(conn, &component).map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("the component_appid is taken".to_owned())
                } else {
                    internal(e)
                }
            })?;
            Ok(((), move |cache: &mut Cache| {
                cache
                    .components
                    .insert(component.component_appid.clone(), component);
            }))
        })
        .await
    }

    async fn components(&self) -> StoreResult<Vec<(Component, Vec<Authorization>)>> {
        let mut list: Vec<(Component, Vec<Authorization>)> = self.read(|cache| {
            cache
                .components
                .values()
                .map(|component| {
                    let mut auths: Vec<Authorization> = cache
                        .authorizations
                        .values()
                        .filter(|a| a.component_appid == component.component_appid)
                        .cloned()
                        .collect();
                    auths.sort_by(|a, b| a.appid.cmp(&b.appid));
                    (component.clone(), auths)
                })
                .collect()
        });
        list.sort_by(|a, b| {
            (a.0.created_at, &a.0.component_appid).cmp(&(b.0.created_at, &b.0.component_appid))
        });
        Ok(list)
    }

    async fn component(&self, component_appid: &str) -> StoreResult<Option<Component>> {
        Ok(self.read(|cache| cache.components.get(component_appid).cloned()))
    }

    async fn delete_component(&self, component_appid: &str) -> StoreResult<()> {
        let owner = component_appid.to_owned();
        let component_appid = component_appid.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("DELETE FROM components WHERE component_appid = ?1")
                .and_then(|mut stmt| stmt.execute([&component_appid]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            forget_owner(conn, &component_appid)?;
            Ok(((), move |cache: &mut Cache| {
                cache.remove_owner(&component_appid)
            }))
        })
        .await?;
        self.forget_in_memory(&owner);
        Ok(())
    }

    async fn add_ticket(
        &self,
        component_appid: &str,
        hash: Digest,
        expires_at: i64,
    ) -> StoreResult<()> {
        let component_appid = component_appid.to_owned();
        self.write(move |conn| {
            if !component_exists(conn, &component_appid)? {
                return Err(StoreError::NotFound);
            }
            conn.prepare_cached(
                "INSERT INTO component_tickets (hash, component_appid, \
                expires_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut stmt| stmt.execute(params![hash, component_appid, expires_at]))
            .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                cache.tickets.insert(hash, (component_appid, expires_at));
            }))
        })
        .await
    }

    async fn ticket(&self, hash: &Digest) -> StoreResult<Option<(String, i64)>> {
        Ok(self.read(|cache| cache.tickets.get(hash).cloned()))
    }

    async fn authorize(&self, authorization: Authorization) -> StoreResult<()> {
        self.write(move |conn| {
            if !component_exists(conn, &authorization.component_appid)?
                || !app_exists(conn, &authorization.appid)?
            {
                return Err(StoreError::NotFound);
            }
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO authorizations ({AUTH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    authorization.component_appid,
                    authorization.appid,
                    json_text(&authorization.funcscopes),
                    authorization.refresh_hash,
                    json_text(&authorization.previous),
                ])
            })
            .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                let key = (
                    authorization.component_appid.clone(),
                    authorization.appid.clone(),
                );
                cache.authorizations.insert(key, authorization);
            }))
        })
        .await
    }

    async fn authorization(
        &self,
        component_appid: &str,
        appid: &str,
    ) -> StoreResult<Option<Authorization>> {
        Ok(self.read(|cache| {
            cache
                .authorizations
                .get(&(component_appid.to_owned(), appid.to_owned()))
                .cloned()
        }))
    }

    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<()> {
        self.write(move |conn| {
            let current = conn
                .prepare_cached(&format!(
                    "SELECT {AUTH_COLUMNS} FROM authorizations WHERE component_appid = ?1 AND \
                        appid = ?2"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(params![rotation.component_appid, rotation.appid], |row| {
                        columns::authorization(row)
                    })
                    .optional()
                })
                .map_err(internal)?;
            let Some(mut auth) = current else {
                return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid));
            };
            rules::rotate(&mut auth, &rotation)?;
            conn.prepare_cached(
                "UPDATE authorizations SET refresh_hash = ?3, previous = ?4 WHERE \
                    component_appid = ?1 AND appid = ?2",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    auth.component_appid,
                    auth.appid,
                    auth.refresh_hash,
                    json_text(&auth.previous)
                ])
            })
            .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                cache
                    .authorizations
                    .insert((auth.component_appid.clone(), auth.appid.clone()), auth);
            }))
        })
        .await
    }
}

/// Writes a platform's row.
pub(super) fn insert_component(conn: &Connection, component: &Component) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO components ({COMPONENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4)"
    ))?
    .execute(params![
        component.component_appid,
        component.secret_hash,
        json_text(&component.ip_whitelist),
        component.created_at
    ])
    .map(drop)
}
