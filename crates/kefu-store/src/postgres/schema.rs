//! The PostgreSQL schema, applied in order and recorded in `kefu_migrations`. Every
//! object lives in the connection's first `search_path` schema (`public` unless the
//! URL says otherwise), so several kefu deployments, or tests, can share a database.

use tokio_postgres::Client;

/// Each entry moves the schema one version up. Never edit a shipped entry: add one.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE apps (
    appid          text PRIMARY KEY,
    wechat_id      text NOT NULL UNIQUE,
    original_id    text NOT NULL UNIQUE,
    account_type   text NOT NULL,
    verified       boolean NOT NULL,
    new_kf_enabled boolean NOT NULL,
    secret_hash    bytea NOT NULL,
    created_at     bigint NOT NULL,
    next_kf_id     bigint NOT NULL,
    settings       jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE kf_accounts (
    appid              text NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    kf_id              bigint NOT NULL,
    kf_account         text NOT NULL,
    nickname           text NOT NULL,
    kf_openid          text NOT NULL UNIQUE,
    headimg_version    bigint,
    kf_wx              text,
    invite_wx          text,
    invite_expire_time bigint,
    invite_state       text,
    online_status      bigint NOT NULL DEFAULT 0,
    accepted_case      bigint NOT NULL DEFAULT 0,
    created_at         bigint NOT NULL,
    PRIMARY KEY (appid, kf_account),
    UNIQUE (appid, kf_id)
);
CREATE INDEX kf_accounts_by_wx ON kf_accounts(kf_wx) WHERE kf_wx IS NOT NULL;

CREATE TABLE kf_headimgs (
    appid   text NOT NULL,
    kf_id   bigint NOT NULL,
    version bigint NOT NULL,
    jpeg    bytea NOT NULL,
    PRIMARY KEY (appid, kf_id),
    FOREIGN KEY (appid, kf_id) REFERENCES kf_accounts(appid, kf_id) ON DELETE CASCADE
);

-- `appid` is the app a token acts for, or the platform for component tokens.
CREATE TABLE tokens (
    hash          bytea PRIMARY KEY,
    appid         text NOT NULL,
    channel       text NOT NULL,
    component     text,
    issued_at     bigint NOT NULL,
    expires_at    bigint NOT NULL,
    superseded_at bigint,
    -- Only for stable tokens, which are handed out again while they last.
    value         text
);
CREATE INDEX tokens_by_owner ON tokens(appid);
CREATE INDEX tokens_by_component ON tokens(component) WHERE component IS NOT NULL;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);
-- Exactly one current token per family, whatever the instances do.
CREATE UNIQUE INDEX tokens_current ON tokens(appid, channel, coalesce(component, ''))
    WHERE superseded_at IS NULL;

CREATE TABLE counters (
    owner text NOT NULL,
    name  text NOT NULL,
    kind  text NOT NULL,
    win   bigint NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (owner, name, kind, win)
);

-- Adds one to each counter unless one is at its limit: all or nothing, in the one
-- statement that calls it. Answers 0, or the 1-based position of the first counter at
-- its limit. Counts are rate limits, not acknowledged changes: they commit without
-- waiting for the disk.
CREATE FUNCTION kefu_consume(owners text[], names text[], kinds text[], wins bigint[], lims bigint[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    got bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    BEGIN
        FOR i IN 1 .. coalesce(array_length(owners, 1), 0) LOOP
            INSERT INTO counters AS c (owner, name, kind, win, count)
                VALUES (owners[i], names[i], kinds[i], wins[i], 1)
                ON CONFLICT (owner, name, kind, win)
                DO UPDATE SET count = c.count + 1 WHERE c.count < lims[i]
                RETURNING count INTO got;
            IF NOT FOUND OR got > lims[i] THEN
                RAISE EXCEPTION USING ERRCODE = 'KF001', MESSAGE = i::text;
            END IF;
        END LOOP;
    EXCEPTION WHEN SQLSTATE 'KF001' THEN
        RETURN SQLERRM::integer;
    END;
    RETURN 0;
END
$$;

CREATE TABLE request_log (
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    rid           text PRIMARY KEY,
    appid         text,
    method        text NOT NULL,
    path          text NOT NULL,
    errcode       bigint NOT NULL,
    invoke_time   bigint NOT NULL,
    cost_ms       bigint NOT NULL,
    request_url   text NOT NULL,
    request_body  text NOT NULL,
    response_body text NOT NULL,
    client_ip     text NOT NULL
);
CREATE INDEX request_log_by_time ON request_log(invoke_time);
CREATE INDEX request_log_by_app ON request_log(appid, invoke_time);

CREATE TABLE components (
    component_appid text PRIMARY KEY,
    secret_hash     bytea NOT NULL,
    ip_whitelist    jsonb NOT NULL,
    created_at      bigint NOT NULL
);

CREATE TABLE component_tickets (
    hash            bytea PRIMARY KEY,
    component_appid text NOT NULL REFERENCES components(component_appid) ON DELETE CASCADE,
    expires_at      bigint NOT NULL
);

CREATE TABLE authorizations (
    component_appid text NOT NULL REFERENCES components(component_appid) ON DELETE CASCADE,
    appid           text NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    funcscopes      jsonb NOT NULL,
    refresh_hash    bytea NOT NULL,
    -- [[sha256 bytes, valid until], …] of replaced refresh tokens.
    previous        jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (component_appid, appid)
);

-- The shared test clock: how far it was moved ahead of real time.
CREATE TABLE clock (
    id          integer PRIMARY KEY CHECK (id = 1),
    offset_secs bigint NOT NULL
);
",
    r"
-- Supersedes kefu_consume (kept for instances of an earlier version on the same
-- database). Counts a batch of calls in one statement: for each call in order, adds one to each of
-- its counters unless one of them is at its limit (all or nothing per call). The
-- distinct counters come sorted (owners, names, kinds, wins), so that every instance
-- locks them in the same order; per counter of a call: the call's number (1-based, in
-- order), the counter's position among the distinct ones, and its limit. Answers, per
-- call, 0 or the 1-based position (within the call) of the first counter at its limit.
-- Counts are rate limits, not acknowledged changes: they commit without waiting for the
-- disk.
CREATE FUNCTION kefu_consume_batch(owners text[], names text[], kinds text[], wins bigint[],
                                   calls integer[], keys integer[], lims bigint[])
RETURNS integer[] LANGUAGE plpgsql AS $$
DECLARE
    counts bigint[];
    before bigint[];
    answers integer[] := '{}';
    n integer := coalesce(array_length(calls, 1), 0);
    i integer := 1;
    j integer;
    k integer;
    full_at integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR attempt IN 1 .. 2 LOOP
        SELECT array_agg(locked.count ORDER BY locked.ord) INTO counts FROM (
            SELECT c.count, u.ord
            FROM unnest(owners, names, kinds, wins) WITH ORDINALITY AS u(owner, name, kind, win, ord)
            JOIN counters c ON (c.owner, c.name, c.kind, c.win) = (u.owner, u.name, u.kind, u.win)
            ORDER BY u.ord
            FOR UPDATE OF c
        ) AS locked;
        EXIT WHEN coalesce(array_length(counts, 1), 0) = array_length(owners, 1);
        -- A counter seen for the first time: made at zero, then everything is locked
        -- again, in order.
        INSERT INTO counters (owner, name, kind, win, count)
            SELECT u.owner, u.name, u.kind, u.win, 0
            FROM unnest(owners, names, kinds, wins) AS u(owner, name, kind, win)
            ON CONFLICT DO NOTHING;
    END LOOP;
    before := counts;
    WHILE i <= n LOOP
        j := i;
        full_at := 0;
        WHILE j <= n AND calls[j] = calls[i] LOOP
            IF full_at = 0 AND counts[keys[j]] >= lims[j] THEN
                full_at := j - i + 1;
            END IF;
            j := j + 1;
        END LOOP;
        IF full_at = 0 THEN
            FOR k IN i .. j - 1 LOOP
                counts[keys[k]] := counts[keys[k]] + 1;
            END LOOP;
        END IF;
        answers := answers || full_at;
        i := j;
    END LOOP;
    UPDATE counters c SET count = u.count
    FROM unnest(owners, names, kinds, wins, counts, before) AS u(owner, name, kind, win, count, before)
    WHERE (c.owner, c.name, c.kind, c.win) = (u.owner, u.name, u.kind, u.win)
        AND u.count <> u.before;
    RETURN answers;
END
$$;
",
    r"
-- The request log's bounds: each record's size, and what the log holds in all (kept by
-- statement triggers, so that every insert and delete counts, from any instance) and
-- had to delete.
ALTER TABLE request_log ADD COLUMN bytes bigint NOT NULL DEFAULT 0;
UPDATE request_log SET bytes = 64 + octet_length(rid) + octet_length(coalesce(appid, ''))
    + octet_length(method) + octet_length(path) + octet_length(request_url)
    + octet_length(request_body) + octet_length(response_body) + octet_length(client_ip);
CREATE INDEX request_log_by_seq ON request_log(seq);
CREATE TABLE log_usage (
    id      integer PRIMARY KEY CHECK (id = 1),
    rows    bigint NOT NULL,
    bytes   bigint NOT NULL,
    dropped bigint NOT NULL
);
INSERT INTO log_usage SELECT 1, count(*), coalesce(sum(bytes), 0), 0 FROM request_log;
CREATE FUNCTION kefu_log_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_usage SET rows = rows + (SELECT count(*) FROM added),
        bytes = bytes + (SELECT coalesce(sum(bytes), 0) FROM added) WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE FUNCTION kefu_log_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_usage SET rows = rows - (SELECT count(*) FROM removed),
        bytes = bytes - (SELECT coalesce(sum(bytes), 0) FROM removed) WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER request_log_added AFTER INSERT ON request_log
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION kefu_log_added();
CREATE TRIGGER request_log_removed AFTER DELETE ON request_log
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION kefu_log_removed();

-- Every call, kept or not, counted by app ('' when unknown), path, errcode and hour.
CREATE TABLE call_counts (
    owner   text NOT NULL,
    path    text NOT NULL,
    errcode bigint NOT NULL,
    hour    bigint NOT NULL,
    count   bigint NOT NULL,
    PRIMARY KEY (owner, path, errcode, hour)
);
",
    r"
-- Why each recorded call was answered as it was.
ALTER TABLE request_log ADD COLUMN reason text NOT NULL DEFAULT '';
",
    r"
-- Simulated fans: their windows, typing, and who serves them ('served' by session_kf
-- since session_since, last active session_active; or 'waiting' since session_since,
-- in place session_seq, latest message session_active).
CREATE TABLE fans (
    appid          text NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    openid         text NOT NULL,
    nickname       text NOT NULL,
    following      boolean NOT NULL,
    created_at     bigint NOT NULL,
    windows        jsonb NOT NULL,
    last_exchange  bigint,
    typing_until   bigint,
    session        text,
    session_kf     text,
    session_since  bigint,
    session_active bigint,
    session_seq    bigint,
    PRIMARY KEY (appid, openid)
);
CREATE INDEX fans_by_kf ON fans(appid, session_kf) WHERE session = 'served';
CREATE INDEX fans_waiting ON fans(appid, session_seq) WHERE session = 'waiting';
CREATE INDEX fans_idle ON fans(session_active) WHERE session = 'served';
CREATE SEQUENCE fan_queue_seq;

-- The chat history.
CREATE TABLE messages (
    msgid    bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    appid    text NOT NULL REFERENCES apps(appid) ON DELETE CASCADE,
    openid   text NOT NULL,
    opercode bigint NOT NULL,
    text     text NOT NULL,
    time     bigint NOT NULL,
    worker   text NOT NULL
);
CREATE INDEX messages_by_time ON messages(appid, time, msgid);
CREATE INDEX messages_by_age ON messages(time);
CREATE INDEX messages_by_fan ON messages(appid, openid, msgid);

-- A deleted account's sessions end with it.
CREATE FUNCTION kefu_kf_sessions_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fans SET session = NULL, session_kf = NULL, session_since = NULL,
        session_active = NULL, session_seq = NULL
    WHERE appid = OLD.appid AND session = 'served' AND session_kf = OLD.kf_account;
    RETURN NULL;
END
$$;
CREATE TRIGGER kf_sessions_end AFTER DELETE ON kf_accounts
    FOR EACH ROW EXECUTE FUNCTION kefu_kf_sessions_end();
",
];

/// The advisory lock key that serializes migrations between instances starting at
/// once ("kefumig" in ASCII).
const MIGRATION_LOCK: i64 = 0x006b_6566_756d_6967;

/// The schema version the migrations bring a database to.
pub(crate) const LATEST: usize = MIGRATIONS.len();

/// Brings the schema to the newest version, each step in its own transaction, one
/// instance at a time.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result.and(unlocked.map(drop))
}

async fn apply(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS kefu_migrations (
                version    integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let current: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM kefu_migrations", &[])
        .await?
        .try_get(0)?;
    let current = usize::try_from(current).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO kefu_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
