//! The SQLite schema, applied in order by `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version up. Never edit a shipped entry: add one.
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE apps (
    appid          TEXT PRIMARY KEY,
    wechat_id      TEXT NOT NULL UNIQUE,
    original_id    TEXT NOT NULL UNIQUE,
    account_type   TEXT NOT NULL,
    verified       INTEGER NOT NULL,
    new_kf_enabled INTEGER NOT NULL,
    secret_hash    BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    next_kf_id     INTEGER NOT NULL
) STRICT;

CREATE TABLE kf_accounts (
    appid              TEXT NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    kf_id              INTEGER NOT NULL,
    kf_account         TEXT NOT NULL,
    nickname           TEXT NOT NULL,
    kf_openid          TEXT NOT NULL UNIQUE,
    headimg_version    INTEGER,
    kf_wx              TEXT,
    invite_wx          TEXT,
    invite_expire_time INTEGER,
    invite_state       TEXT,
    online_status      INTEGER NOT NULL DEFAULT 0,
    accepted_case      INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (appid, kf_account),
    UNIQUE (appid, kf_id)
) STRICT;
CREATE INDEX kf_accounts_by_wx ON kf_accounts(kf_wx) WHERE kf_wx IS NOT NULL;

CREATE TABLE kf_headimgs (
    appid   TEXT NOT NULL,
    kf_id   INTEGER NOT NULL,
    version INTEGER NOT NULL,
    jpeg    BLOB NOT NULL,
    PRIMARY KEY (appid, kf_id),
    FOREIGN KEY (appid, kf_id) REFERENCES kf_accounts(appid, kf_id) ON DELETE CASCADE
) STRICT;

CREATE TABLE tokens (
    hash          BLOB PRIMARY KEY,
    appid         TEXT NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    channel       TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    superseded_at INTEGER
) STRICT;
CREATE INDEX tokens_current ON tokens(appid, channel) WHERE superseded_at IS NULL;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);
"];

/// Brings the database to the newest schema, each step in its own transaction.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let current = usize::try_from(current).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}
