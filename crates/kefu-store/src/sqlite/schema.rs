//! The SQLite schema, applied in order by `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version up. Never edit a shipped entry: add one.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE apps (
    appid          TEXT PRIMARY KEY,
    wechat_id      TEXT NOT NULL UNIQUE,
    original_id    TEXT NOT NULL UNIQUE,
    account_type   TEXT NOT NULL,
    verified       INTEGER NOT NULL,
    new_kf_enabled INTEGER NOT NULL,
    secret_hash    BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    next_kf_id     INTEGER NOT NULL,
    settings       TEXT NOT NULL DEFAULT '{}'
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

-- `appid` is the app a token acts for, or the platform for component tokens.
CREATE TABLE tokens (
    hash          BLOB PRIMARY KEY,
    appid         TEXT NOT NULL,
    channel       TEXT NOT NULL,
    component     TEXT,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    superseded_at INTEGER,
    -- Only for stable tokens, which are handed out again while they last.
    value         TEXT
) STRICT;
CREATE INDEX tokens_by_owner ON tokens(appid);
CREATE INDEX tokens_current ON tokens(appid, channel) WHERE superseded_at IS NULL;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);

CREATE TABLE counters (
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    window     INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    PRIMARY KEY (owner, name, kind, window)
) STRICT;

CREATE TABLE request_log (
    rid           TEXT PRIMARY KEY,
    appid         TEXT,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    errcode       INTEGER NOT NULL,
    invoke_time   INTEGER NOT NULL,
    cost_ms       INTEGER NOT NULL,
    request_url   TEXT NOT NULL,
    request_body  TEXT NOT NULL,
    response_body TEXT NOT NULL,
    client_ip     TEXT NOT NULL
) STRICT;
CREATE INDEX request_log_by_time ON request_log(invoke_time);
CREATE INDEX request_log_by_app ON request_log(appid, invoke_time);

CREATE TABLE components (
    component_appid TEXT PRIMARY KEY,
    secret_hash     BLOB NOT NULL,
    ip_whitelist    TEXT NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE component_tickets (
    hash            BLOB PRIMARY KEY,
    component_appid TEXT NOT NULL REFERENCES components(component_appid) ON DELETE CASCADE,
    expires_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE authorizations (
    component_appid   TEXT NOT NULL REFERENCES components(component_appid) ON DELETE CASCADE,
    appid             TEXT NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    funcscopes        TEXT NOT NULL,
    refresh_hash      BLOB NOT NULL,
    -- JSON: [[sha256 bytes, valid until], …] of replaced refresh tokens.
    previous          TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (component_appid, appid)
) STRICT;
",
    r"
-- The shared test clock: how far it was moved ahead of real time.
CREATE TABLE clock (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    offset_secs INTEGER NOT NULL
) STRICT;
",
    r"
-- The request log's bounds: each record's size, and what the log holds in all (kept by
-- triggers, so that every insert and delete counts) and had to delete.
ALTER TABLE request_log ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE request_log SET bytes = 64 + length(CAST(rid AS BLOB)) + length(CAST(coalesce(appid, '') AS BLOB))
    + length(CAST(method AS BLOB)) + length(CAST(path AS BLOB)) + length(CAST(request_url AS BLOB))
    + length(CAST(request_body AS BLOB)) + length(CAST(response_body AS BLOB))
    + length(CAST(client_ip AS BLOB));
CREATE TABLE log_usage (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    rows    INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    dropped INTEGER NOT NULL
) STRICT;
INSERT INTO log_usage SELECT 1, count(*), coalesce(sum(bytes), 0), 0 FROM request_log;
CREATE TRIGGER request_log_added AFTER INSERT ON request_log BEGIN
    UPDATE log_usage SET rows = rows + 1, bytes = bytes + NEW.bytes WHERE id = 1;
END;
CREATE TRIGGER request_log_removed AFTER DELETE ON request_log BEGIN
    UPDATE log_usage SET rows = rows - 1, bytes = bytes - OLD.bytes WHERE id = 1;
END;

-- Every call, kept or not, counted by app ('' when unknown), path, errcode and hour.
CREATE TABLE call_counts (
    owner   TEXT NOT NULL,
    path    TEXT NOT NULL,
    errcode INTEGER NOT NULL,
    hour    INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (owner, path, errcode, hour)
) STRICT;
",
    r"
-- Why each recorded call was answered as it was.
ALTER TABLE request_log ADD COLUMN reason TEXT NOT NULL DEFAULT '';
",
    r"
-- Simulated fans: their windows, typing, and who serves them ('served' by session_kf
-- since session_since, last active session_active; or 'waiting' since session_since,
-- in place session_seq, latest message session_active).
CREATE TABLE fans (
    appid          TEXT NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    openid         TEXT NOT NULL,
    nickname       TEXT NOT NULL,
    following      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    windows        TEXT NOT NULL,
    last_exchange  INTEGER,
    typing_until   INTEGER,
    session        TEXT,
    session_kf     TEXT,
    session_since  INTEGER,
    session_active INTEGER,
    session_seq    INTEGER,
    PRIMARY KEY (appid, openid)
) STRICT;
CREATE INDEX fans_by_kf ON fans(appid, session_kf) WHERE session = 'served';
CREATE INDEX fans_waiting ON fans(appid, session_seq) WHERE session = 'waiting';
CREATE INDEX fans_idle ON fans(session_active) WHERE session = 'served';

-- The chat history.
CREATE TABLE messages (
    msgid    INTEGER PRIMARY KEY AUTOINCREMENT,
    appid    TEXT NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    openid   TEXT NOT NULL,
    opercode INTEGER NOT NULL,
    text     TEXT NOT NULL,
    time     INTEGER NOT NULL,
    worker   TEXT NOT NULL
) STRICT;
CREATE INDEX messages_by_time ON messages(appid, time, msgid);
CREATE INDEX messages_by_age ON messages(time);
CREATE INDEX messages_by_fan ON messages(appid, openid, msgid);

-- A deleted account's sessions end with it.
CREATE TRIGGER kf_sessions_end AFTER DELETE ON kf_accounts BEGIN
    UPDATE fans SET session = NULL, session_kf = NULL, session_since = NULL,
        session_active = NULL, session_seq = NULL
    WHERE appid = OLD.appid AND session = 'served' AND session_kf = OLD.kf_account;
END;
",
];

/// The schema version the migrations bring a database to.
pub(crate) const LATEST: usize = MIGRATIONS.len();

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
