//! One conformance suite for the store trait, run against every backend: SQLite always,
//! PostgreSQL when `KEFU_TEST_POSTGRES_URL` names a database (each test in its own fresh
//! schema, so they run in parallel). Without it the PostgreSQL half says SKIPPED on
//! standard error, and fails under CI.
//!
//! Each check takes a [`Backend`], which opens the store, and opens it again over the
//! same data to check what survived.

use std::sync::Arc;

use bytes::Bytes;
use kefu_api::admin::{AccountType, AppPatch, InvitationAction, QuotaLimit};
use kefu_api::endpoints::kf_del::Target;
use kefu_api::{AppAlias, ErrCode, KfAccount, Nickname, WechatId};
use kefu_store::postgres::{PostgresOptions, PostgresStore};
use kefu_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use kefu_store::test_support::PgSchema;
use kefu_store::{
    App, Authorization, CommitObserver, Component, CounterKey, Digest, InvitationAnswer, Kf,
    LogFilter, LogLimits, LogUsage, LoggedRequest, Mint, NewInvitation, NewKf, Rotation, Snapshot,
    StableMint, Store, StoreError, TokenChannel, TokenRecord, Window,
};

/// Where a test's data lives.
enum Backend {
    Sqlite(tempfile::TempDir, Durability),
    Postgres(PgSchema),
}

impl Backend {
    fn sqlite(durability: Durability) -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"), durability)
    }

    async fn postgres() -> Option<Backend> {
        PgSchema::create().await.map(Backend::Postgres)
    }

    /// Opens the store over this backend's data (drop the previous one first: an SQLite
    /// file takes one process, and one store, at a time).
    async fn open(&self) -> Arc<dyn Store> {
        self.open_with(LogLimits::default()).await
    }

    /// Opens the store with the request log bounded by `log`.
    async fn open_with(&self, log: LogLimits) -> Arc<dyn Store> {
        self.open_observed(log, None).await
    }

    /// Opens the store with the request log bounded by `log`, telling `commits` of its
    /// batches.
    async fn open_observed(
        &self,
        log: LogLimits,
        commits: Option<Arc<dyn CommitObserver>>,
    ) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(dir, durability) => {
                let options = SqliteOptions {
                    durability: *durability,
                    log,
                    commits,
                    ..SqliteOptions::new(dir.path().join("kefu.db"))
                };
                Arc::new(SqliteStore::open(&options).expect("open SQLite"))
            }
            Backend::Postgres(schema) => {
                let options = PostgresOptions {
                    log,
                    commits,
                    ..PostgresOptions::new(schema.url())
                };
                Arc::new(
                    PostgresStore::open(&options)
                        .await
                        .expect("open PostgreSQL"),
                )
            }
        }
    }
}

impl Backend {
    /// Sets the schema version recorded in the data, from outside the store (as an
    /// older or newer kefu on the same data would leave it).
    async fn set_schema_version(&self, version: i64) {
        match self {
            Backend::Sqlite(dir, _) => {
                let conn = rusqlite::Connection::open(dir.path().join("kefu.db")).unwrap();
                conn.pragma_update(None, "user_version", version).unwrap();
            }
            Backend::Postgres(schema) => {
                let (client, connection) =
                    tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let version = i32::try_from(version).unwrap();
                client
                    .execute(
                        "DELETE FROM kefu_migrations WHERE version > $1",
                        &[&version],
                    )
                    .await
                    .unwrap();
                client
                    .execute(
                        "INSERT INTO kefu_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&version],
                    )
                    .await
                    .unwrap();
            }
        }
    }
}

/// Runs each named check on both backends: `sqlite::name` (durability full, its writer
/// on a thread of its own), `sqlite_normal::name` (its writer a task on the runtime) and
/// `postgres::name`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::sqlite(super::Durability::Full)).await;
                }
            )*
        }
        mod sqlite_normal {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::sqlite(super::Durability::Normal)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(backend) = super::Backend::postgres().await {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

mod conversation;
mod snapshots;

conformance!(
    apps_are_created_changed_and_deleted,
    accounts_follow_wechat_rules,
    fifty_concurrent_adds_of_one_account_give_one_success,
    one_hundred_twenty_concurrent_adds_stop_at_one_hundred,
    concurrent_updates_leave_one_submitted_nickname,
    concurrent_changes_keep_their_own_verdicts,
    tokens_supersede_with_grace,
    owner_tokens_list_every_family_newest_first,
    concurrent_token_issues_leave_one_current,
    concurrent_tokens_for_a_missing_app_fail_alone,
    stable_tokens_mint_only_over_the_expected_one,
    counters_count_exactly_and_all_or_nothing,
    counters_survive_a_reopen,
    head_images_are_versioned,
    invitations_follow_wechat_rules,
    online_state_is_kept,
    the_request_log_keeps_failed_calls,
    the_request_log_stays_within_its_bound_on_disk_while_trimmed,
    a_call_with_a_nul_byte_is_logged_and_names_no_app,
    platforms_tickets_and_authorizations,
    an_authorizer_token_needs_its_platform,
    tokens_and_tickets_past_retention_are_purged_once_a_minute,
    counters_are_kept_five_minutes_forty_days_and_thirteen_months,
    the_clock_offset_only_moves_forward,
    a_snapshot_restores_into_an_empty_store,
    a_restore_into_a_non_empty_store_writes_nothing,
    a_snapshot_lists_everything_in_one_order,
    readiness_follows_the_schema_version,
    a_replace_leaves_exactly_the_snapshot,
    concurrent_mints_are_told_as_batches,
);

const APPID: &str = "wx00000000000000a1";

fn app(appid: &str, wechat_id: &str) -> App {
    App {
        appid: appid.to_owned(),
        wechat_id: wechat_id.to_owned(),
        original_id: format!("gh_{}", &appid[appid.len() - 12..]),
        account_type: AccountType::Service,
        verified: true,
        new_kf_enabled: true,
        secret_hash: [7; 32],
        created_at: 100,
        settings: Default::default(),
    }
}

fn account(name: &str) -> KfAccount {
    KfAccount::parse(name).expect("valid account")
}

fn new_kf(prefix: &str) -> NewKf {
    NewKf {
        kf_account: account(&format!("{prefix}@shop")),
        nickname: Nickname::parse(prefix).expect("valid nickname"),
        kf_openid: format!("o-{prefix}"),
        created_at: 200,
    }
}

async fn with_app(store: &Arc<dyn Store>) {
    store
        .create_app(app(APPID, "shop"))
        .await
        .expect("create app");
}

fn rejected(result: Result<impl std::fmt::Debug, StoreError>) -> ErrCode {
    match result {
        Err(StoreError::Rejected(code)) => code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn token(appid: &str, channel: TokenChannel, issued_at: i64) -> TokenRecord {
    TokenRecord {
        appid: Arc::from(appid),
        channel,
        component: None,
        issued_at,
        expires_at: issued_at + 7200,
        superseded_at: None,
    }
}

fn hash(n: u8) -> Digest {
    [n; 32]
}

async fn apps_are_created_changed_and_deleted(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    assert!(matches!(
        store.create_app(app(APPID, "other")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        matches!(
            store.create_app(app("wx00000000000000b2", "shop")).await,
            Err(StoreError::Conflict(_))
        ),
        "the WeChat ID is taken"
    );
    let stored = store.app(APPID).await.unwrap().expect("app");
    assert_eq!(*stored, app(APPID, "shop"));

    let patch = AppPatch {
        verified: Some(false),
        wechat_id: Some(AppAlias::parse("renamed").unwrap()),
        quotas: Some(
            [(
                "/cgi-bin/token".to_owned(),
                QuotaLimit {
                    daily: Some(5),
                    per_minute: None,
                },
            )]
            .into(),
        ),
        ..AppPatch::default()
    };
    let changed = store.update_app(APPID, patch).await.unwrap();
    assert!(!changed.verified);
    assert_eq!(changed.wechat_id, "renamed");
    store.set_app_secret(APPID, [9; 32]).await.unwrap();
    drop(store);

    let store = backend.open().await;
    let reread = store.app(APPID).await.unwrap().expect("app after reopen");
    assert_eq!(reread.wechat_id, "renamed");
    assert_eq!(reread.secret_hash, [9; 32]);
    assert_eq!(reread.settings.quotas["/cgi-bin/token"].daily, Some(5));

    store.add_kf(APPID, new_kf("a")).await.unwrap();
    let rename = AppPatch {
        wechat_id: Some(AppAlias::parse("again").unwrap()),
        ..AppPatch::default()
    };
    assert!(matches!(
        store.update_app(APPID, rename).await,
        Err(StoreError::Conflict(_))
    ));
    let summaries = store.apps().await.unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].kf_count, 1);

    store
        .issue_token(mint(
            token(APPID, TokenChannel::Basic, 1000),
            hash(1),
            1000,
            300,
        ))
        .await
        .unwrap();
    store.delete_app(APPID).await.unwrap();
    assert!(store.app(APPID).await.unwrap().is_none());
    assert!(
        store.token(&hash(1)).await.unwrap().is_none(),
        "tokens go with the app"
    );
    assert!(matches!(store.kfs(APPID).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.delete_app(APPID).await,
        Err(StoreError::NotFound)
    ));
}

async fn accounts_follow_wechat_rules(backend: Backend) {
    let store = backend.open().await;
    assert!(matches!(
        store.add_kf(APPID, new_kf("a")).await,
        Err(StoreError::NotFound)
    ));
    with_app(&store).await;
    let a = store.add_kf(APPID, new_kf("a")).await.unwrap();
    let b = store.add_kf(APPID, new_kf("b")).await.unwrap();
    assert_eq!((a.kf_id, b.kf_id), (2001, 2002));
    assert_eq!(
        rejected(store.add_kf(APPID, new_kf("a")).await),
        ErrCode::KfAccountExists
    );

    let nick = Nickname::parse("客服1").unwrap();
    store
        .update_kf(APPID, &account("a@shop"), &nick)
        .await
        .unwrap();
    assert_eq!(
        rejected(store.update_kf(APPID, &account("zz@shop"), &nick).await),
        ErrCode::InvalidKfAccount
    );

    store
        .delete_kf(APPID, &Target::OpenId("o-b".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        rejected(
            store
                .delete_kf(APPID, &Target::Account(account("b@shop")))
                .await
        ),
        ErrCode::InvalidKfAccount
    );
    // Ids are never reused, across a reopen too.
    drop(store);
    let store = backend.open().await;
    let c = store.add_kf(APPID, new_kf("c")).await.unwrap();
    assert_eq!(c.kf_id, 2003);
    let list: Vec<(i64, String, String)> = store
        .kfs(APPID)
        .await
        .unwrap()
        .iter()
        .map(|kf| (kf.kf_id, kf.kf_account.clone(), kf.nickname.clone()))
        .collect();
    assert_eq!(
        list,
        [
            (2001, "a@shop".to_owned(), "客服1".to_owned()),
            (2003, "c@shop".to_owned(), "c".to_owned())
        ]
    );
}

async fn fifty_concurrent_adds_of_one_account_give_one_success(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut kf = new_kf("same");
                kf.kf_openid = format!("o-{i}");
                store.add_kf(APPID, kf).await
            })
        })
        .collect();
    let (mut ok, mut exists) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Rejected(ErrCode::KfAccountExists)) => exists += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, exists), (1, 49));
    assert_eq!(store.kfs(APPID).await.unwrap().len(), 1);
}

async fn one_hundred_twenty_concurrent_adds_stop_at_one_hundred(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.add_kf(APPID, new_kf(&format!("k{i}"))).await })
        })
        .collect();
    let (mut ok, mut full) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Rejected(ErrCode::KfAccountLimit)) => full += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, full), (100, 20));
    let ids: Vec<i64> = store
        .kfs(APPID)
        .await
        .unwrap()
        .iter()
        .map(|kf| kf.kf_id)
        .collect();
    assert_eq!(ids, (2001..=2100).collect::<Vec<_>>());
}

async fn concurrent_updates_leave_one_submitted_nickname(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    store.add_kf(APPID, new_kf("a")).await.unwrap();
    let submitted: Vec<String> = (0..64).map(|i| format!("nick{i}")).collect();
    let tasks: Vec<_> = submitted
        .iter()
        .map(|nick| {
            let (store, nick) = (Arc::clone(&store), Nickname::parse(nick).unwrap());
            tokio::spawn(async move { store.update_kf(APPID, &account("a@shop"), &nick).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("update");
    }
    let kfs = store.kfs(APPID).await.unwrap();
    assert_eq!(kfs.len(), 1, "never a lost account");
    assert!(
        submitted.contains(&kfs[0].nickname),
        "{} was not submitted",
        kfs[0].nickname
    );
    let settled = kfs[0].nickname.clone();
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.kfs(APPID).await.unwrap()[0].nickname, settled);
}

/// Changes fired together (one batch, or a few) keep their own verdicts: a change to a
/// missing account is 65401 and leaves the others alone.
async fn concurrent_changes_keep_their_own_verdicts(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    for name in ["a", "b", "c"] {
        store.add_kf(APPID, new_kf(name)).await.unwrap();
    }
    let changes = ["a", "ghost1", "b", "ghost2", "c", "a"];
    let tasks: Vec<_> = changes
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let store = Arc::clone(&store);
            let (target, nick) = (
                account(&format!("{name}@shop")),
                Nickname::parse(&format!("n{i}")).unwrap(),
            );
            tokio::spawn(async move { store.update_kf(APPID, &target, &nick).await })
        })
        .collect();
    let mut verdicts = Vec::new();
    for task in tasks {
        verdicts.push(task.await.unwrap().map_err(|e| match e {
            StoreError::Rejected(code) => code,
            other => panic!("{other:?}"),
        }));
    }
    assert_eq!(
        verdicts,
        [
            Ok(()),
            Err(ErrCode::InvalidKfAccount),
            Ok(()),
            Err(ErrCode::InvalidKfAccount),
            Ok(()),
            Ok(()),
        ]
    );
    let nicks: Vec<String> = store
        .kfs(APPID)
        .await
        .unwrap()
        .iter()
        .map(|kf| kf.nickname.clone())
        .collect();
    assert!(nicks[0] == "n0" || nicks[0] == "n5", "{nicks:?}");
    assert_eq!(nicks[1..], ["n2", "n4"]);
}

async fn owner_tokens_list_every_family_newest_first(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    assert!(store.owner_tokens(APPID, 10).await.unwrap().is_empty());
    for (n, channel, at) in [
        (1, TokenChannel::Basic, 1000),
        (2, TokenChannel::Console, 1500),
        (3, TokenChannel::Basic, 2000),
        (4, TokenChannel::Console, 2000),
    ] {
        store
            .issue_token(mint(token(APPID, channel, at), hash(n), at, 300))
            .await
            .unwrap();
    }
    let owned = store.owner_tokens(APPID, 10).await.unwrap();
    let order: Vec<(u8, TokenChannel, i64)> = owned
        .iter()
        .map(|(hash, record)| (hash[0], record.channel, record.issued_at))
        .collect();
    assert_eq!(
        order,
        [
            (3, TokenChannel::Basic, 2000),
            (4, TokenChannel::Console, 2000),
            (2, TokenChannel::Console, 1500),
            (1, TokenChannel::Basic, 1000),
        ]
    );
    // Each family supersedes only its own: the console token of 1500 by the one of
    // 2000, the basic token of 1000 by the one of 2000.
    assert_eq!(owned[2].1.superseded_at, Some(2300));
    assert_eq!(owned[3].1.superseded_at, Some(2300));
    assert_eq!(owned[0].1.superseded_at, None);
    assert_eq!(owned[1].1.superseded_at, None);
    assert_eq!(store.owner_tokens(APPID, 2).await.unwrap().len(), 2);
    assert!(
        store
            .owner_tokens("wx00000000000000ff", 10)
            .await
            .unwrap()
            .is_empty()
    );
    // What was written is read back after a restart (the console family included).
    drop(store);
    let store = backend.open().await;
    let again = store.owner_tokens(APPID, 10).await.unwrap();
    assert_eq!(again, owned);
}

async fn tokens_supersede_with_grace(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    assert!(matches!(
        store
            .issue_token(mint(
                token("wx00000000000000ff", TokenChannel::Basic, 1),
                hash(9),
                1,
                300
            ))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .issue_token(mint(
            token(APPID, TokenChannel::Basic, 1000),
            hash(1),
            1000,
            300,
        ))
        .await
        .unwrap();
    // Another channel is independent.
    store
        .issue_stable_token(stable_mint(
            token(APPID, TokenChannel::Stable, 1000),
            hash(5),
            "stable-value".to_owned(),
            1000,
            0,
            None,
        ))
        .await
        .unwrap();
    store
        .issue_token(mint(
            token(APPID, TokenChannel::Basic, 2000),
            hash(2),
            2000,
            300,
        ))
        .await
        .unwrap();
    let old = store.token(&hash(1)).await.unwrap().expect("old token");
    assert_eq!(old.superseded_at, Some(2300));
    let new = store.token(&hash(2)).await.unwrap().expect("new token");
    assert_eq!(new.superseded_at, None);
    let current = store
        .current_token(APPID, TokenChannel::Stable)
        .await
        .unwrap()
        .expect("stable");
    assert_eq!(
        (current.hash, current.value.as_deref()),
        (hash(5), Some("stable-value"))
    );
    assert!(
        store
            .current_token(APPID, TokenChannel::Basic)
            .await
            .unwrap()
            .is_some()
    );

    store
        .set_token_times(&hash(2), Some(2500), None)
        .await
        .unwrap();
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store.token(&hash(2)).await.unwrap().unwrap().superseded_at,
        Some(2500)
    );
    assert_eq!(
        store.token(&hash(1)).await.unwrap().unwrap().superseded_at,
        Some(2300)
    );
    assert!(
        store
            .current_token(APPID, TokenChannel::Basic)
            .await
            .unwrap()
            .is_none(),
        "a token superseded by hand is no longer current"
    );
    assert!(matches!(
        store.set_token_times(&hash(77), Some(1), None).await,
        Err(StoreError::NotFound)
    ));
}

async fn concurrent_token_issues_leave_one_current(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let tasks: Vec<_> = (1..=40_u8)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .issue_token(mint(
                        token(APPID, TokenChannel::Basic, 1000),
                        hash(n),
                        1000,
                        300,
                    ))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("issue");
    }
    let mut current = Vec::new();
    for n in 1..=40_u8 {
        let record = store
            .token(&hash(n))
            .await
            .unwrap()
            .expect("every token is kept");
        match record.superseded_at {
            None => current.push(n),
            // Each was replaced by a later one, and keeps working for its grace.
            Some(at) => assert_eq!(at, 1300, "token {n}"),
        }
    }
    assert_eq!(current.len(), 1, "exactly one current token: {current:?}");
    let reported = store
        .current_token(APPID, TokenChannel::Basic)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reported.hash, hash(current[0]));
}

async fn concurrent_tokens_for_a_missing_app_fail_alone(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let tasks: Vec<_> = (1..=20_u8)
        .map(|n| {
            let store = Arc::clone(&store);
            let appid = if n % 2 == 0 {
                APPID
            } else {
                "wx00000000000000ff"
            };
            tokio::spawn(async move {
                store
                    .issue_token(mint(
                        token(appid, TokenChannel::Basic, 1000),
                        hash(n),
                        1000,
                        300,
                    ))
                    .await
            })
        })
        .collect();
    for (n, task) in (1..=20_u8).zip(tasks) {
        let issued = task.await.unwrap();
        if n % 2 == 0 {
            issued.expect("the app exists");
            assert!(store.token(&hash(n)).await.unwrap().is_some());
        } else {
            assert!(matches!(issued, Err(StoreError::NotFound)), "{issued:?}");
            assert!(store.token(&hash(n)).await.unwrap().is_none());
        }
    }
    assert!(
        store
            .current_token(APPID, TokenChannel::Basic)
            .await
            .unwrap()
            .is_some()
    );
}

async fn stable_tokens_mint_only_over_the_expected_one(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let issue = |n: u8, replaces: Option<Digest>| {
        let store = Arc::clone(&store);
        async move {
            store
                .issue_stable_token(stable_mint(
                    token(APPID, TokenChannel::Stable, 1000),
                    hash(n),
                    format!("v{n}"),
                    1000,
                    0,
                    replaces,
                ))
                .await
        }
    };
    issue(1, None).await.unwrap();
    assert!(
        matches!(issue(2, None).await, Err(StoreError::Conflict(_))),
        "one exists already"
    );
    assert!(matches!(
        issue(2, Some(hash(9))).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store.token(&hash(2)).await.unwrap().is_none(),
        "a refused mint writes nothing"
    );
    // Twenty callers that all decided on token 1: exactly one mints.
    let tasks: Vec<_> = (10..30_u8)
        .map(|n| tokio::spawn(issue(n, Some(hash(1)))))
        .collect();
    let mut minted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => minted += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(minted, 1);
    let current = store
        .current_token(APPID, TokenChannel::Stable)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(current.hash, hash(1));
    assert_eq!(current.value, Some(format!("v{}", current.hash[0])));
    assert_eq!(
        store.token(&hash(1)).await.unwrap().unwrap().superseded_at,
        Some(1000)
    );
}

fn key(name: &str, window: Window) -> CounterKey {
    CounterKey {
        owner: APPID.to_owned(),
        name: name.to_owned(),
        window,
    }
}

async fn counters_count_exactly_and_all_or_nothing(backend: Backend) {
    let store = backend.open().await;
    let day = key("/cgi-bin/token", Window::Day(20_000));
    let minute = key("/cgi-bin/token", Window::Minute(28_800_000));
    // 150 concurrent calls against a limit of 100: exactly 100 pass.
    let tasks: Vec<_> = (0..150)
        .map(|_| {
            let (store, day) = (Arc::clone(&store), day.clone());
            tokio::spawn(async move { store.consume(&[(day, 100)]).await })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().is_ok() {
            passed += 1;
        }
    }
    assert_eq!(passed, 100);
    assert_eq!(store.counter(&day).await.unwrap(), 100);

    // All or nothing: the minute counter is not charged when the day is full.
    assert_eq!(
        store
            .consume(&[(minute.clone(), 10), (day.clone(), 100)])
            .await
            .unwrap(),
        Err(1)
    );
    assert_eq!(store.counter(&minute).await.unwrap(), 0);
    assert_eq!(store.consume(&[(minute.clone(), 0)]).await.unwrap(), Err(0));
    assert_eq!(store.counter(&minute).await.unwrap(), 0);
    assert_eq!(
        store
            .consume(&[(minute.clone(), 10), (day.clone(), 101)])
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(store.counter(&minute).await.unwrap(), 1);

    store
        .reset_counters(APPID, &["/cgi-bin/token".to_owned()])
        .await
        .unwrap();
    assert_eq!(store.counter(&day).await.unwrap(), 0);
    assert_eq!(store.counter(&minute).await.unwrap(), 0);
}

async fn counters_survive_a_reopen(backend: Backend) {
    let store = backend.open().await;
    let day = key("/cgi-bin/token", Window::Day(20_000));
    for _ in 0..7 {
        store.consume(&[(day.clone(), 100)]).await.unwrap().unwrap();
    }
    store.maintain(20_000 * 86_400, 0).await.unwrap();
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.counter(&day).await.unwrap(), 7);
    // Long past windows are forgotten by housekeeping.
    store.maintain(20_100 * 86_400, 0).await.unwrap();
    assert_eq!(store.counter(&day).await.unwrap(), 0);
}

async fn head_images_are_versioned(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let kf = store.add_kf(APPID, new_kf("a")).await.unwrap();
    assert_eq!(
        rejected(
            store
                .set_kf_headimg(APPID, &account("zz@shop"), Bytes::from_static(b"x"))
                .await
        ),
        ErrCode::InvalidKfAccount
    );
    let v1 = store
        .set_kf_headimg(APPID, &account("a@shop"), Bytes::from_static(b"one"))
        .await
        .unwrap();
    let v2 = store
        .set_kf_headimg(APPID, &account("a@shop"), Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(
        store
            .kf_headimg(APPID, kf.kf_id, 2)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(
        store.kf_headimg(APPID, kf.kf_id, 1).await.unwrap(),
        None,
        "only the newest is kept"
    );
    assert_eq!(store.kfs(APPID).await.unwrap()[0].headimg_version, Some(2));
}

async fn invitations_follow_wechat_rules(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    for prefix in ["a", "b", "c"] {
        store.add_kf(APPID, new_kf(prefix)).await.unwrap();
    }
    let wx = WechatId::parse("worker1").unwrap();
    let other = WechatId::parse("worker2").unwrap();
    let (now, expires) = (1000, 1000 + 7 * 86_400);
    // Invites `who` to `name` of the first app; the errcode of a refusal.
    let invite = |name: &'static str, who: &WechatId| {
        let (store, who) = (Arc::clone(&store), who.clone());
        async move {
            store
                .invite_kf(APPID, invitation(&account(name), &who, now, expires, 5))
                .await
                .err()
                .map(|error| match error {
                    StoreError::Rejected(code) => code,
                    other => panic!("expected a rejection, got {other:?}"),
                })
        }
    };
    assert_eq!(
        invite("zz@shop", &wx).await,
        Some(ErrCode::InvalidKfAccount)
    );
    assert_eq!(invite("a@shop", &wx).await, None);
    assert_eq!(invite("a@shop", &wx).await, Some(ErrCode::AlreadyInvited));
    assert_eq!(
        invite("a@shop", &other).await,
        Some(ErrCode::InvitationExists)
    );
    assert_eq!(invite("b@shop", &wx).await, Some(ErrCode::AlreadyInvited));
    let bound = store
        .answer_invitation(
            APPID,
            answer(&account("a@shop"), InvitationAction::Accept, now, 5),
        )
        .await
        .unwrap();
    assert_eq!(bound.kf_wx.as_deref(), Some("worker1"));
    assert_eq!(
        invite("a@shop", &other).await,
        Some(ErrCode::AccountAlreadyBound)
    );
    assert_eq!(invite("b@shop", &wx).await, Some(ErrCode::AlreadyWorker));
    assert!(matches!(
        store
            .answer_invitation(
                APPID,
                answer(&account("b@shop"), InvitationAction::Accept, now, 5)
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    // The bound limit counts across apps: worker1 has one, and the limit here is 1.
    store
        .create_app(app("wx00000000000000b2", "shop2"))
        .await
        .unwrap();
    store
        .add_kf("wx00000000000000b2", new_kf("x"))
        .await
        .unwrap();
    assert_eq!(
        rejected(
            store
                .invite_kf(
                    "wx00000000000000b2",
                    invitation(&account("x@shop"), &wx, now, expires, 1)
                )
                .await
        ),
        ErrCode::TooManyBoundAccounts
    );
    store
        .invite_kf(
            APPID,
            invitation(&account("c@shop"), &other, now, expires, 5),
        )
        .await
        .unwrap();
    let rejected_kf = store
        .answer_invitation(
            APPID,
            answer(&account("c@shop"), InvitationAction::Reject, now, 5),
        )
        .await
        .unwrap();
    let invitation = rejected_kf
        .invitation
        .expect("a rejected invitation stays visible");
    assert_eq!(invitation.state, kefu_store::InviteState::Rejected);
    drop(store);
    let store = backend.open().await;
    let kfs = store.kfs(APPID).await.unwrap();
    let by_account =
        |name: &str| -> Kf { kfs.iter().find(|kf| kf.kf_account == name).unwrap().clone() };
    assert_eq!(by_account("a@shop").kf_wx.as_deref(), Some("worker1"));
    assert_eq!(
        by_account("c@shop").invitation.unwrap().state,
        kefu_store::InviteState::Rejected
    );
}

async fn online_state_is_kept(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    store.add_kf(APPID, new_kf("a")).await.unwrap();
    let kf = store
        .set_kf_online(APPID, &account("a@shop"), 1)
        .await
        .unwrap();
    assert_eq!((kf.online_status, kf.accepted_case), (1, 0));
    assert!(matches!(
        store.set_kf_online(APPID, &account("zz@shop"), 1).await,
        Err(StoreError::NotFound)
    ));
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.kfs(APPID).await.unwrap()[0].online_status, 1);
}

fn logged(rid: &str, errcode: i64, invoke_time: i64) -> LoggedRequest {
    LoggedRequest {
        rid: rid.to_owned(),
        appid: Some(APPID.to_owned()),
        method: "POST".to_owned(),
        path: "/customservice/kfaccount/update".to_owned(),
        errcode,
        invoke_time,
        cost_ms: 1,
        request_url: "/customservice/kfaccount/update?access_token=abcdef…".to_owned(),
        request_body: "{}".to_owned(),
        response_body: format!("{{\"errcode\":{errcode}}}"),
        client_ip: "127.0.0.1".to_owned(),
        reason: format!("refused with {errcode}"),
    }
}

async fn a_call_with_a_nul_byte_is_logged_and_names_no_app(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    // PostgreSQL's text holds no U+0000: such a key names nothing, not a failure.
    assert!(store.app("wx\0").await.unwrap().is_none());
    assert!(store.component("\0").await.unwrap().is_none());
    let mut odd = logged("r-nul", 47001, 1001);
    odd.request_body = "{\"a\":\"\0\"}".to_owned();
    store.log_request(Arc::new(odd.into()));
    store.log_request(Arc::new(logged("r-next", 40001, 1001).into()));
    store.maintain(1002, 500).await.unwrap();
    drop(store);
    let store = backend.open().await;
    let kept = store.logged_request("r-nul").await.unwrap().expect("kept");
    assert!(
        kept.request_body.starts_with("{\"a\":\""),
        "{}",
        kept.request_body
    );
    assert!(store.logged_request("r-next").await.unwrap().is_some());
}

async fn the_request_log_keeps_failed_calls(backend: Backend) {
    let store = backend.open().await;
    store.log_request(Arc::new(logged("r-ok", 0, 1000).into()));
    store.log_request(Arc::new(logged("r-failed", 65401, 1001).into()));
    store.log_request(Arc::new(logged("r-old", 40001, 10).into()));
    assert_eq!(
        store
            .logged_request("r-failed")
            .await
            .unwrap()
            .unwrap()
            .errcode,
        65401
    );
    let newest = store
        .logged_requests(LogFilter::app(Some(APPID)), 2)
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|e| e.rid.as_str()).collect::<Vec<_>>(),
        ["r-old", "r-failed"]
    );
    // Filtered by errcode and by path, in memory.
    let failed = LogFilter {
        errcode: Some(65401),
        ..LogFilter::app(Some(APPID))
    };
    let found = store.logged_requests(failed, 10).await.unwrap();
    assert_eq!(
        found.iter().map(|e| e.rid.as_str()).collect::<Vec<_>>(),
        ["r-failed"]
    );
    let path = logged("r-ok", 0, 1000).path;
    let elsewhere = LogFilter {
        path: Some("/cgi-bin/elsewhere"),
        ..LogFilter::default()
    };
    assert!(
        store
            .logged_requests(elsewhere, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let here = LogFilter {
        path: Some(&path),
        ..LogFilter::default()
    };
    assert_eq!(store.logged_requests(here, 10).await.unwrap().len(), 3);
    store.maintain(1002, 500).await.unwrap();
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        store.logged_request("r-failed").await.unwrap(),
        Some(logged("r-failed", 65401, 1001))
    );
    assert_eq!(
        store.logged_request("r-ok").await.unwrap(),
        None,
        "successes stay in memory only"
    );
    assert_eq!(
        store.logged_request("r-old").await.unwrap(),
        None,
        "older than the retention"
    );
    assert_eq!(
        store
            .logged_requests(LogFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Filtered once written, too.
    let count = |filter: LogFilter<'static>| {
        let store = Arc::clone(&store);
        async move { store.logged_requests(filter, 10).await.unwrap().len() }
    };
    assert_eq!(
        count(LogFilter {
            errcode: Some(65401),
            path: Some("/customservice/kfaccount/update"),
            ..LogFilter::app(Some(APPID))
        })
        .await,
        1
    );
    assert_eq!(
        count(LogFilter {
            errcode: Some(40001),
            ..LogFilter::default()
        })
        .await,
        0
    );
    assert_eq!(
        count(LogFilter {
            path: Some("/cgi-bin/elsewhere"),
            ..LogFilter::default()
        })
        .await,
        0
    );
    assert!(
        store
            .logged_requests(LogFilter::app(Some("wx00000000000000ff")), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Bytes the backend's request log takes on disk: the whole database file and its WAL
/// on SQLite, the log's table with its indexes and TOAST on PostgreSQL.
async fn log_bytes_on_disk(backend: &Backend) -> u64 {
    match backend {
        Backend::Sqlite(dir, _) => ["kefu.db", "kefu.db-wal"]
            .iter()
            .map(|name| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len()))
            .sum(),
        Backend::Postgres(schema) => {
            let (client, connection) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            let row = client
                .query_one("SELECT pg_total_relation_size('request_log')", &[])
                .await
                .expect("size");
            u64::try_from(row.get::<_, i64>(0)).unwrap()
        }
    }
}

async fn the_request_log_stays_within_its_bound_on_disk_while_trimmed(backend: Backend) {
    // 1 MiB on disk at most; 24 MiB of failed calls written through it, a second's
    // worth at a time, as a client stuck on an error would.
    let limits = LogLimits {
        disk_rows: 100_000,
        disk_bytes: 1 << 20,
        memory_bytes: 8 << 20,
        per_second: 10_000,
    };
    let store = backend.open_with(limits).await;
    // Bodies that do not compress, as fuzzed ones do not.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = |len: usize| -> String {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + u8::try_from(seed % 26).unwrap())
            })
            .collect()
    };
    let mut rid = 0;
    for second in 0..48 {
        for _ in 0..128 {
            rid += 1;
            let mut call = logged(&format!("r-{rid}"), 45009, 10_000 + second);
            call.request_body = noise(4096);
            store.log_request(Arc::new(call.into()));
        }
        store.maintain(10_001 + second, 0).await.unwrap();
        // Background work (a vacuum on PostgreSQL) gets its turn, as it would between
        // a busy server's housekeeping rounds.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let usage = store.log_usage().await.unwrap();
    assert!(usage.bytes <= limits.disk_bytes, "{usage:?}");
    assert!(usage.dropped_from_store > 4_000, "{usage:?}");
    let on_disk = log_bytes_on_disk(&backend).await;
    assert!(
        on_disk < 8 << 20,
        "{on_disk} bytes on disk for a log bounded to {} after 24 MiB were written",
        limits.disk_bytes
    );
}

fn component() -> Component {
    Component {
        component_appid: "wx00000000000000c3".to_owned(),
        secret_hash: [3; 32],
        ip_whitelist: vec!["10.0.0.1".to_owned()],
        created_at: 50,
    }
}

async fn an_authorizer_token_needs_its_platform(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let authorizer = TokenRecord {
        component: Some(Arc::from("wx00000000000000c3")),
        ..token(APPID, TokenChannel::Authorizer, 1000)
    };
    // The app exists, the platform does not: no token, on every backend.
    assert!(matches!(
        store
            .issue_token(mint(authorizer.clone(), hash(1), 1000, 300))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.token(&hash(1)).await.unwrap(), None);
    store.create_component(component()).await.unwrap();
    store
        .issue_token(mint(authorizer.clone(), hash(2), 1000, 300))
        .await
        .unwrap();
    assert_eq!(store.token(&hash(2)).await.unwrap(), Some(authorizer));
}

/// Seven days, as the store keeps expired tokens and tickets.
const RETENTION_SECS: i64 = 7 * 86_400;

async fn tokens_and_tickets_past_retention_are_purged_once_a_minute(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    store.create_component(component()).await.unwrap();
    let cid = "wx00000000000000c3";
    let now = 1_000_000_000;
    // The first round purges (nothing yet).
    store.maintain(now, 0).await.unwrap();
    // A token and a ticket that expired more than the retention ago, and a token
    // that expired within it.
    let old = TokenRecord {
        expires_at: now - RETENTION_SECS - 10,
        ..token(APPID, TokenChannel::Basic, now - RETENTION_SECS - 7210)
    };
    let recent = TokenRecord {
        expires_at: now - RETENTION_SECS + 3600,
        ..token(APPID, TokenChannel::Stable, now - RETENTION_SECS - 3600)
    };
    store.issue_token(mint(old, hash(1), now, 0)).await.unwrap();
    store
        .issue_stable_token(stable_mint(
            recent.clone(),
            hash(2),
            "v".to_owned(),
            now,
            0,
            None,
        ))
        .await
        .unwrap();
    store
        .add_ticket(cid, hash(3), now - RETENTION_SECS - 10)
        .await
        .unwrap();
    // One purge a minute, on every backend: not yet at +59 s.
    store.maintain(now + 59, 0).await.unwrap();
    assert!(store.token(&hash(1)).await.unwrap().is_some());
    assert!(store.ticket(&hash(3)).await.unwrap().is_some());
    store.maintain(now + 60, 0).await.unwrap();
    for (what, gone) in [
        ("token", store.token(&hash(1)).await.unwrap().is_none()),
        ("ticket", store.ticket(&hash(3)).await.unwrap().is_none()),
    ] {
        assert!(gone, "the {what} past its retention is purged");
    }
    assert_eq!(store.token(&hash(2)).await.unwrap(), Some(recent.clone()));
    // And the database forgot them as the memory did.
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.token(&hash(1)).await.unwrap(), None);
    assert_eq!(store.ticket(&hash(3)).await.unwrap(), None);
    assert_eq!(store.token(&hash(2)).await.unwrap(), Some(recent));
}

async fn counters_are_kept_five_minutes_forty_days_and_thirteen_months(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let now = 1_800_000_000;
    let counters = [
        key("/cgi-bin/token", Window::minute_of(now)),
        key("/cgi-bin/token", Window::day_of(now)),
        key("/cgi-bin/token", Window::month_of(now)),
    ];
    let limits: Vec<_> = counters.iter().map(|c| (c.clone(), 100)).collect();
    store.consume(&limits).await.unwrap().unwrap();
    store.maintain(now, 0).await.unwrap();
    // 50 days on: the minute and the day are past their retention, the month is not.
    let later = now + 50 * 86_400;
    store.maintain(later, 0).await.unwrap();
    let kept = |store: Arc<dyn Store>| {
        let counters = counters.clone();
        async move {
            let mut kept = Vec::new();
            for counter in &counters {
                kept.push(store.counter(counter).await.unwrap());
            }
            kept
        }
    };
    assert_eq!(kept(Arc::clone(&store)).await, [0, 0, 1]);
    drop(store);
    let store = backend.open().await;
    assert_eq!(kept(store).await, [0, 0, 1], "after a reopen");
}

async fn a_snapshot_lists_everything_in_one_order(backend: Backend) {
    let store = backend.open().await;
    // Apps by creation time, then appid; created out of that order.
    for (appid, wechat_id, created_at) in [
        ("wx00000000000000b2", "two", 100),
        ("wx00000000000000b1", "one", 100),
        ("wx00000000000000b3", "three", 50),
    ] {
        store
            .create_app(App {
                created_at,
                ..app(appid, wechat_id)
            })
            .await
            .unwrap();
    }
    for name in ["zed", "amy", "kim"] {
        store
            .add_kf("wx00000000000000b1", new_kf(name))
            .await
            .unwrap();
    }
    // Created out of their order too (c8 is the younger).
    for (cid, created_at) in [("wx00000000000000c8", 20), ("wx00000000000000c9", 10)] {
        store
            .create_component(Component {
                component_appid: cid.to_owned(),
                created_at,
                ..component()
            })
            .await
            .unwrap();
    }
    for (cid, appid) in [
        ("wx00000000000000c9", "wx00000000000000b2"),
        ("wx00000000000000c8", "wx00000000000000b3"),
        ("wx00000000000000c8", "wx00000000000000b1"),
    ] {
        store
            .authorize(Authorization {
                component_appid: cid.to_owned(),
                appid: appid.to_owned(),
                funcscopes: vec![1],
                refresh_hash: hash(1),
                previous: Vec::new(),
            })
            .await
            .unwrap();
    }
    let snapshot = store.snapshot().await.unwrap();
    let apps: Vec<_> = snapshot.apps.iter().map(|a| a.app.appid.as_str()).collect();
    assert_eq!(
        apps,
        [
            "wx00000000000000b3",
            "wx00000000000000b1",
            "wx00000000000000b2"
        ]
    );
    let ids: Vec<_> = snapshot.apps[1]
        .kf_accounts
        .iter()
        .map(|k| k.kf.kf_id)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 3);
    let components: Vec<_> = snapshot
        .components
        .iter()
        .map(|c| c.component_appid.as_str())
        .collect();
    assert_eq!(components, ["wx00000000000000c9", "wx00000000000000c8"]);
    let authorizations: Vec<_> = snapshot
        .authorizations
        .iter()
        .map(|a| (a.component_appid.as_str(), a.appid.as_str()))
        .collect();
    assert_eq!(
        authorizations,
        [
            ("wx00000000000000c8", "wx00000000000000b1"),
            ("wx00000000000000c8", "wx00000000000000b3"),
            ("wx00000000000000c9", "wx00000000000000b2"),
        ]
    );
    // The lists the admin API shows are in the same order.
    let listed: Vec<_> = store
        .apps()
        .await
        .unwrap()
        .iter()
        .map(|summary| summary.app.appid.clone())
        .collect();
    assert_eq!(listed, apps);
    let listed: Vec<_> = store
        .components()
        .await
        .unwrap()
        .into_iter()
        .map(|(component, _)| component.component_appid)
        .collect();
    assert_eq!(listed, components);
}

async fn platforms_tickets_and_authorizations(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    store.create_component(component()).await.unwrap();
    assert!(matches!(
        store.create_component(component()).await,
        Err(StoreError::Conflict(_))
    ));
    let clash = Component {
        component_appid: APPID.to_owned(),
        ..component()
    };
    assert!(matches!(
        store.create_component(clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_app(app("wx00000000000000c3", "shop9")).await,
        Err(StoreError::Conflict(_))
    ));
    let cid = "wx00000000000000c3";
    store.add_ticket(cid, hash(4), 5000).await.unwrap();
    assert!(matches!(
        store.add_ticket("wx00000000000000ee", hash(5), 1).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.ticket(&hash(4)).await.unwrap(),
        Some((cid.to_owned(), 5000))
    );
    let auth = Authorization {
        component_appid: cid.to_owned(),
        appid: APPID.to_owned(),
        funcscopes: vec![1, 2],
        refresh_hash: hash(10),
        previous: Vec::new(),
    };
    store.authorize(auth.clone()).await.unwrap();
    store
        .rotate_refresh_token(rotation(cid, APPID, hash(10), hash(11), 1000, 300))
        .await
        .unwrap();
    // The replaced one works during the overlap, then not.
    store
        .rotate_refresh_token(rotation(cid, APPID, hash(10), hash(12), 1100, 300))
        .await
        .unwrap();
    assert_eq!(
        rejected(
            store
                .rotate_refresh_token(rotation(cid, APPID, hash(10), hash(13), 1400, 300))
                .await
        ),
        ErrCode::RefreshTokenInvalid
    );
    let mut component_token = token(cid, TokenChannel::Component, 1000);
    component_token.component = None;
    store
        .issue_token(mint(component_token, hash(20), 1000, 0))
        .await
        .unwrap();
    drop(store);
    let store = backend.open().await;
    let stored = store.authorization(cid, APPID).await.unwrap().unwrap();
    assert_eq!(stored.refresh_hash, hash(12));
    assert_eq!(stored.funcscopes, [1, 2]);
    assert_eq!(store.component(cid).await.unwrap().unwrap(), component());
    let listed = store.components().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.len(), 1);
    store.delete_component(cid).await.unwrap();
    assert!(store.component(cid).await.unwrap().is_none());
    assert!(store.authorization(cid, APPID).await.unwrap().is_none());
    assert!(store.ticket(&hash(4)).await.unwrap().is_none());
    assert!(store.token(&hash(20)).await.unwrap().is_none());
}

async fn the_clock_offset_only_moves_forward(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.clock_offset().await.unwrap(), 0);
    assert_eq!(store.advance_clock_offset(300, 0, 1000).await.unwrap(), 300);
    // Moves add up, a floor lifts it, and it never goes back or past the cap.
    assert_eq!(store.advance_clock_offset(100, 0, 1000).await.unwrap(), 400);
    assert_eq!(store.advance_clock_offset(0, 450, 1000).await.unwrap(), 450);
    assert_eq!(store.advance_clock_offset(0, 10, 1000).await.unwrap(), 450);
    assert_eq!(
        store.advance_clock_offset(900, 0, 1000).await.unwrap(),
        1000
    );
    assert_eq!(store.advance_clock_offset(1, 0, 500).await.unwrap(), 1000);
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.clock_offset().await.unwrap(), 1000);
}

/// A store with something of every portable kind.
async fn populate(store: &Arc<dyn Store>) {
    with_app(store).await;
    for prefix in ["a", "b", "c"] {
        store.add_kf(APPID, new_kf(prefix)).await.unwrap();
    }
    store
        .delete_kf(APPID, &Target::Account(account("b@shop")))
        .await
        .unwrap();
    store
        .set_kf_headimg(
            APPID,
            &account("a@shop"),
            Bytes::from_static(b"\xff\xd8\xffjpeg"),
        )
        .await
        .unwrap();
    let wx = WechatId::parse("worker1").unwrap();
    store
        .invite_kf(APPID, invitation(&account("c@shop"), &wx, 1000, 999_999, 5))
        .await
        .unwrap();
    let mut second = app("wx00000000000000b2", "shop2");
    second.settings.banned_apis = vec!["/customservice/kfaccount/del".to_owned()];
    second.settings.ip_whitelist = vec!["10.1.1.1".to_owned()];
    store.create_app(second).await.unwrap();
    store.create_component(component()).await.unwrap();
    store
        .authorize(Authorization {
            component_appid: component().component_appid,
            appid: APPID.to_owned(),
            funcscopes: vec![1],
            refresh_hash: hash(30),
            previous: Vec::new(),
        })
        .await
        .unwrap();
}

async fn a_snapshot_restores_into_an_empty_store(backend: Backend) {
    let store = backend.open().await;
    populate(&store).await;
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.version, Snapshot::VERSION);
    assert_eq!(snapshot.apps.len(), 2);
    assert_eq!(snapshot.apps[0].next_kf_id, 2004);
    // Through the JSON document, into a fresh store of each backend.
    let document = serde_json::to_string(&snapshot).unwrap();
    let read: Snapshot = serde_json::from_str(&document).unwrap();
    assert_eq!(read, snapshot);

    let mut targets = vec![Backend::sqlite(Durability::Full)];
    if let Some(pg) = Backend::postgres().await {
        targets.push(pg);
    }
    for target in targets {
        let fresh = target.open().await;
        fresh.restore(read.clone()).await.unwrap();
        assert_eq!(fresh.snapshot().await.unwrap(), snapshot);
        // Ids continue where they were; the image is served.
        assert_eq!(fresh.add_kf(APPID, new_kf("d")).await.unwrap().kf_id, 2004);
        assert_eq!(
            fresh.kf_headimg(APPID, 2001, 1).await.unwrap().as_deref(),
            Some(&b"\xff\xd8\xffjpeg"[..])
        );
        assert_eq!(
            fresh.app(APPID).await.unwrap().unwrap().secret_hash,
            [7; 32]
        );
    }
}

async fn a_restore_into_a_non_empty_store_writes_nothing(backend: Backend) {
    let source = Backend::sqlite(Durability::Full);
    let store = source.open().await;
    populate(&store).await;
    let snapshot = store.snapshot().await.unwrap();

    let target = backend.open().await;
    target
        .create_app(app("wx00000000000000d4", "held"))
        .await
        .unwrap();
    assert!(matches!(
        target.restore(snapshot.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(target.apps().await.unwrap().len(), 1);

    // A document that clashes with itself halfway loads nothing either.
    let target = Backend::sqlite(Durability::Full);
    let empty = target.open().await;
    let mut broken = snapshot.clone();
    let mut twin = broken.apps[0].clone();
    twin.app.appid = "wx00000000000000e5".to_owned();
    broken.apps.push(twin);
    assert_invalid(&empty, broken.clone(), "apps[2].wechat_id").await;
    if let Some(pg) = Backend::postgres().await {
        let empty = pg.open().await;
        assert_invalid(&empty, broken, "apps[2].wechat_id").await;
    }
    // Documents that break the store's rules load nothing: another format, a
    // next_kf_id an account has, an id that is both an app and a platform.
    let mut future = snapshot.clone();
    future.version = 99;
    let mut reused_id = snapshot.clone();
    reused_id.apps[0].next_kf_id = 2001;
    let mut both = snapshot.clone();
    both.components[0].component_appid = both.apps[1].app.appid.clone();
    // And documents with a value the API would refuse (each was once served by
    // getkflist after an import).
    let edit = |f: &dyn Fn(&mut Snapshot)| {
        let mut document = snapshot.clone();
        f(&mut document);
        document
    };
    let cases = [
        (future, "version"),
        (reused_id, "apps[0].next_kf_id"),
        (both, "components[0].component_appid"),
        (
            edit(&|d| d.apps[0].app.appid = "not-an-appid".to_owned()),
            "apps[0].appid",
        ),
        (
            edit(&|d| d.apps[0].kf_accounts[0].kf.kf_account = "noatsign".to_owned()),
            "apps[0].kf_accounts[0].kf_account",
        ),
        (
            edit(&|d| d.apps[0].kf_accounts[1].kf.kf_account = "c@other-app".to_owned()),
            "apps[0].kf_accounts[1].kf_account",
        ),
        (
            edit(&|d| d.apps[0].kf_accounts[0].kf.nickname = "a\u{0}b".to_owned()),
            "apps[0].kf_accounts[0].nickname",
        ),
        (
            edit(&|d| d.apps[0].kf_accounts[0].kf.online_status = 99),
            "apps[0].kf_accounts[0].online_status",
        ),
        (
            edit(&|d| {
                d.apps[0].kf_accounts[1]
                    .kf
                    .invitation
                    .as_mut()
                    .unwrap()
                    .invite_wx = "1bad".to_owned()
            }),
            "apps[0].kf_accounts[1].invitation.invite_wx",
        ),
        (
            edit(&|d| d.apps[0].kf_accounts[0].headimg = Some(Bytes::from_static(b"GIF89a"))),
            "apps[0].kf_accounts[0].headimg",
        ),
        (
            edit(&|d| {
                d.apps[1]
                    .app
                    .settings
                    .ip_whitelist
                    .push("nowhere".to_owned())
            }),
            "apps[1].settings.ip_whitelist[1]",
        ),
        (
            edit(&|d| d.authorizations[0].appid = "wx00000000000000ff".to_owned()),
            "authorizations[0].appid",
        ),
    ];
    for (bad, place) in cases {
        let target = Backend::sqlite(Durability::Full);
        let empty = target.open().await;
        assert_invalid(&empty, bad, place).await;
    }
}

/// The document is refused as invalid, naming `place`, and nothing is written.
async fn assert_invalid(store: &Arc<dyn Store>, document: Snapshot, place: &str) {
    match store.restore(document).await {
        Err(StoreError::Invalid(why)) => assert!(why.starts_with(&format!("{place}:")), "{why}"),
        other => panic!("{place}: {other:?}"),
    }
    assert!(store.apps().await.unwrap().is_empty());
    assert!(store.components().await.unwrap().is_empty());
}

fn mint(token: TokenRecord, hash: Digest, now: i64, grace_secs: i64) -> Mint {
    Mint {
        token,
        hash,
        now,
        grace_secs,
    }
}

fn stable_mint(
    token: TokenRecord,
    hash: Digest,
    value: String,
    now: i64,
    grace_secs: i64,
    replaces: Option<Digest>,
) -> StableMint {
    StableMint {
        mint: mint(token, hash, now, grace_secs),
        value,
        replaces,
    }
}

fn rotation(
    component_appid: &str,
    appid: &str,
    presented: Digest,
    next: Digest,
    now: i64,
    overlap_secs: i64,
) -> Rotation {
    Rotation {
        component_appid: component_appid.to_owned(),
        appid: appid.to_owned(),
        presented,
        next,
        now,
        overlap_secs,
    }
}

fn invitation(
    kf_account: &KfAccount,
    invite_wx: &WechatId,
    now: i64,
    expire_time: i64,
    max_bound: usize,
) -> NewInvitation {
    NewInvitation {
        kf_account: kf_account.clone(),
        invite_wx: invite_wx.clone(),
        now,
        expire_time,
        max_bound,
    }
}

fn answer(
    kf_account: &KfAccount,
    action: InvitationAction,
    now: i64,
    max_bound: usize,
) -> InvitationAnswer {
    InvitationAnswer {
        kf_account: kf_account.clone(),
        action,
        now,
        max_bound,
    }
}

async fn readiness_follows_the_schema_version(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.ready().await, Ok(()));
    backend.set_schema_version(999).await;
    let why = store.ready().await.unwrap_err();
    assert!(why.contains("version 999, newer than"), "{why}");
    backend.set_schema_version(1).await;
    let why = store.ready().await.unwrap_err();
    assert!(why.contains("version 1, not migrated"), "{why}");
    drop(store);
    // Data a newer kefu wrote opens as it is (nothing to migrate), and is refused.
    backend.set_schema_version(999).await;
    let store = backend.open().await;
    let why = store.ready().await.unwrap_err();
    let latest: i64 = why.rsplit(' ').next().unwrap().parse().unwrap();
    backend.set_schema_version(latest).await;
    assert_eq!(store.ready().await, Ok(()));
}

async fn a_replace_leaves_exactly_the_snapshot(backend: Backend) {
    // What to go back to.
    let source = Backend::sqlite(Durability::Full);
    let from = source.open().await;
    populate(&from).await;
    let snapshot = from.snapshot().await.unwrap();
    drop(from);

    // What a test run left: another app, a token, counts, calls, a clock moved.
    const OTHER: &str = "wx00000000000000c3";
    let store = backend.open().await;
    store.create_app(app(OTHER, "other")).await.unwrap();
    store
        .issue_token(mint(
            token(OTHER, TokenChannel::Basic, 1000),
            hash(1),
            1000,
            300,
        ))
        .await
        .unwrap();
    let day = key("/cgi-bin/token", Window::Day(20_000));
    store.consume(&[(day.clone(), 100)]).await.unwrap().unwrap();
    store.maintain(20_000 * 86_400, 0).await.unwrap();
    store
        .advance_clock_offset(900, 900, i64::MAX)
        .await
        .unwrap();

    store
        .replace(snapshot.clone(), Vec::new(), 60)
        .await
        .unwrap();
    let check = |store: Arc<dyn Store>| {
        let (snapshot, day) = (snapshot.clone(), day.clone());
        async move {
            assert_eq!(store.snapshot().await.unwrap(), snapshot);
            assert!(store.app(OTHER).await.unwrap().is_none());
            assert!(store.token(&hash(1)).await.unwrap().is_none());
            assert_eq!(store.counter(&day).await.unwrap(), 0);
            assert_eq!(store.clock_offset().await.unwrap(), 60);
            let usage = store.log_usage().await.unwrap();
            assert_eq!(usage, LogUsage::default(), "the request log is empty");
            store
        }
    };
    let store = check(store).await;
    drop(store);
    // As it was committed.
    let store = check(backend.open().await).await;

    // A refused snapshot writes nothing.
    let mut bad = snapshot.clone();
    bad.version = 99;
    assert!(matches!(
        store.replace(bad, Vec::new(), 0).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.snapshot().await.unwrap(), snapshot);
    // And to nothing.
    let empty = Snapshot {
        version: Snapshot::VERSION,
        ..Snapshot::default()
    };
    store.replace(empty, Vec::new(), 0).await.unwrap();
    assert!(store.apps().await.unwrap().is_empty());
    assert_eq!(store.clock_offset().await.unwrap(), 0);
}

/// What a [`CommitObserver`] was told: every batch's writes.
#[derive(Debug, Default)]
struct Told(std::sync::Mutex<Vec<usize>>);

impl CommitObserver for Told {
    fn committed(&self, writes: usize, _took: std::time::Duration) {
        self.0.lock().unwrap().push(writes);
    }
}

async fn concurrent_mints_are_told_as_batches(backend: Backend) {
    let told = Arc::new(Told::default());
    let observer: Arc<dyn CommitObserver> = told.clone();
    let store = backend
        .open_observed(LogLimits::default(), Some(observer))
        .await;
    with_app(&store).await;
    let before: usize = told.0.lock().unwrap().iter().sum();
    let tasks: Vec<_> = (1..=40_u8)
        .map(|n| {
            let store = Arc::clone(&store);
            let record = token(APPID, TokenChannel::Basic, 1_000);
            tokio::spawn(async move { store.issue_token(mint(record, hash(n), 1_000, 300)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("mint");
    }
    let batches = told.0.lock().unwrap().clone();
    let after: usize = batches.iter().sum();
    assert!(
        after - before >= 40,
        "every mint is in a told batch: {batches:?} (before: {before})"
    );
    assert!(
        batches.iter().all(|&writes| writes >= 1),
        "no empty batch is told: {batches:?}"
    );
}
