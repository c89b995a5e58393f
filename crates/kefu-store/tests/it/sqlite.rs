//! The SQLite store on a real file: group commit keeps each request's outcome its
//! own, and what was acknowledged is what a reopened store finds.

use std::sync::Arc;

use kefu_api::admin::AccountType;
use kefu_api::{ErrCode, KfAccount, Nickname};
use kefu_store::roles::*;
use kefu_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use kefu_store::{App, NewKf, StoreError};

fn app(appid: &str) -> App {
    App {
        appid: appid.to_owned(),
        wechat_id: "shop".to_owned(),
        original_id: "gh_0123456789ab".to_owned(),
        account_type: AccountType::Service,
        verified: true,
        new_kf_enabled: true,
        secret_hash: [7; 32],
        created_at: 1,
        settings: Default::default(),
    }
}

fn new_kf(prefix: &str, openid: &str) -> NewKf {
    NewKf {
        kf_account: KfAccount::parse(&format!("{prefix}@shop")).unwrap(),
        nickname: Nickname::parse(prefix).unwrap(),
        kf_openid: openid.to_owned(),
        created_at: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_durability_sets_what_sqlite_waits_for() {
    for (durability, level) in [(Durability::Full, 2), (Durability::Normal, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            durability,
            ..SqliteOptions::new(dir.path().join("k.db"))
        };
        let store = SqliteStore::open(&options).unwrap();
        assert_eq!(store.synchronous().await.unwrap(), level, "{durability:?}");
        // Still so after a write went through the writer.
        store.create_app(app("wx0000000000000001")).await.unwrap();
        assert_eq!(store.synchronous().await.unwrap(), level, "{durability:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_keeps_each_outcome_apart() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions::new(dir.path().join("k.db"));
    let store = Arc::new(SqliteStore::open(&options).unwrap());
    store.create_app(app("wx0000000000000001")).await.unwrap();

    // Fired together, these land in few transactions; each keeps its own verdict.
    let appid = "wx0000000000000001";
    let missing = KfAccount::parse("ghost@shop").unwrap();
    let nick = Nickname::parse("x").unwrap();
    let (a, dup, b, ghost) = tokio::join!(
        store.add_kf(appid, new_kf("a", "o1")),
        store.add_kf(appid, new_kf("a", "o2")),
        store.add_kf(appid, new_kf("b", "o3")),
        store.update_kf(appid, &missing, &nick),
    );
    let mut verdicts = [a.is_ok(), dup.is_ok()];
    verdicts.sort_unstable();
    assert_eq!(
        verdicts,
        [false, true],
        "exactly one of the two adds of 'a' wins"
    );
    let loser = if a.is_ok() { dup } else { a };
    assert!(matches!(
        loser,
        Err(StoreError::Rejected(ErrCode::KfAccountExists))
    ));
    assert!(b.is_ok());
    assert!(matches!(
        ghost,
        Err(StoreError::Rejected(ErrCode::InvalidKfAccount))
    ));

    let accounts: Vec<String> = store
        .kfs(appid)
        .await
        .unwrap()
        .iter()
        .map(|kf| kf.kf_account.clone())
        .collect();
    assert_eq!(accounts.len(), 2);

    // Reopen: exactly what was acknowledged is there, ids included.
    let before = store.kfs(appid).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&options).unwrap();
    assert_eq!(*store.kfs(appid).await.unwrap(), *before);
    assert_eq!(
        store.app(appid).await.unwrap().unwrap().secret_hash,
        [7; 32]
    );
}

#[tokio::test]
async fn missing_apps_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteOptions::new(dir.path().join("k.db"))).unwrap();
    assert!(matches!(
        store.add_kf("wx0000000000000009", new_kf("a", "o1")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.kfs("wx0000000000000009").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_app("wx0000000000000009").await,
        Err(StoreError::NotFound)
    ));
}

/// A store opened where no runtime runs (a tool's plain `main`) starts a runtime of its
/// own for its writer, and serves whatever runtime its callers use.
#[test]
fn a_store_opened_outside_a_runtime_serves_any_runtime() {
    for durability in [Durability::Full, Durability::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            durability,
            ..SqliteOptions::new(dir.path().join("k.db"))
        };
        let appid = "wx0000000000000003";
        let store = SqliteStore::open(&options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            store.create_app(app(appid)).await.unwrap();
            store.add_kf(appid, new_kf("a", "o1")).await.unwrap();
            let account = KfAccount::parse("a@shop").unwrap();
            let nickname = Nickname::parse("renamed").unwrap();
            store.update_kf(appid, &account, &nickname).await.unwrap();
        });
        drop(runtime);
        drop(store);
        let store = SqliteStore::open(&options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let kfs = runtime.block_on(store.kfs(appid)).unwrap();
        assert_eq!(kfs.len(), 1, "{durability:?}");
        assert_eq!(kfs[0].nickname, "renamed", "{durability:?}");
    }
}

/// No commit checkpoints; the checkpointer moves the WAL into the database beside the
/// writer, and the writer has it start afresh, so that it stays short however many
/// commits there are, one after another or many at once, in either durability.
async fn the_wal_stays_short(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let options = SqliteOptions {
        durability,
        ..SqliteOptions::new(&path)
    };
    let store = Arc::new(SqliteStore::open(&options).unwrap());
    let appid = "wx0000000000000004";
    store.create_app(app(appid)).await.unwrap();
    let writers = 16;
    for w in 0..writers {
        store
            .add_kf(appid, new_kf(&format!("a{w}"), &format!("o{w}")))
            .await
            .unwrap();
    }
    let wal_path = dir.path().join("k.db-wal");
    let wal_len = || std::fs::metadata(&wal_path).map_or(0, |m| m.len());
    // One commit after another: several frames of 4 KiB every time, 12 MiB and more.
    let account = KfAccount::parse("a0@shop").unwrap();
    let mut longest = 0;
    for i in 0..3000 {
        let nickname = Nickname::parse(&format!("n{i}")).unwrap();
        store.update_kf(appid, &account, &nickname).await.unwrap();
        longest = longest.max(wal_len());
    }
    // Many at once: the commits never pause for the checkpointer to catch up.
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let account = KfAccount::parse(&format!("a{w}@shop")).unwrap();
                for i in 0..400 {
                    let nickname = Nickname::parse(&format!("m{i}")).unwrap();
                    store.update_kf(appid, &account, &nickname).await.unwrap();
                }
            })
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (wal_path, done) = (wal_path.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut longest = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                longest = longest.max(std::fs::metadata(&wal_path).map_or(0, |m| m.len()));
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            longest
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let longest = longest.max(sampler.await.unwrap()).max(wal_len());
    assert!(
        longest < 12 * 1024 * 1024,
        "the WAL grew to {longest} bytes ({durability:?})"
    );
    drop(store);
    let store = SqliteStore::open(&options).unwrap();
    let kfs = store.kfs(appid).await.unwrap();
    assert!(kfs.iter().all(|kf| kf.nickname == "m399"), "{kfs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_short_under_many_commits_with_durability_normal() {
    the_wal_stays_short(Durability::Normal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_short_under_many_commits_with_durability_full() {
    the_wal_stays_short(Durability::Full).await;
}
