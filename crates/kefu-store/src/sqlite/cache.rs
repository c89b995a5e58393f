//! The in-memory image of the database that serves every read.
//!
//! One process owns the SQLite file (a lock file enforces it), so the image is exact:
//! the writer changes it only after the change it mirrors has committed.

use std::sync::Arc;

use crate::model::{App, Authorization, Component, Digest, Kf, TokenChannel, TokenRecord};

pub(crate) struct AppEntry {
    pub(crate) app: Arc<App>,
    /// Copy-on-write: readers clone the `Arc`, the writer `make_mut`s it.
    pub(crate) kfs: Arc<Vec<Kf>>,
    /// Changes whenever `kfs` may have: a number never given to another list.
    pub(crate) version: u64,
    /// Where each account is in `kfs`: made when first needed, forgotten whenever the
    /// list is handed out for changing (which may add or remove accounts).
    positions: Option<HashMap<String, usize>>,
}

/// The maps of the image: looked up several times by every request, so hashed with
/// foldhash (seeded afresh in every process) rather than SipHash.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Which tokens supersede each other: same owner, channel and platform.
pub(crate) type TokenFamily = (Arc<str>, TokenChannel, Option<Arc<str>>);

#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) apps: HashMap<String, AppEntry>,
    pub(crate) tokens: HashMap<Digest, TokenRecord>,
    /// The values of the tokens that keep one (stable tokens).
    pub(crate) token_values: HashMap<Digest, String>,
    pub(crate) current_tokens: HashMap<TokenFamily, Digest>,
    pub(crate) components: HashMap<String, Component>,
    pub(crate) authorizations: HashMap<(String, String), Authorization>,
    pub(crate) tickets: HashMap<Digest, (String, i64)>,
}

pub(crate) fn family(record: &TokenRecord) -> TokenFamily {
    (
        record.appid.clone(),
        record.channel,
        record.component.clone(),
    )
}

/// The next list version, unique in the process (a store reopened or restored never
/// repeats one).
pub(crate) fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl AppEntry {
    pub(crate) fn new(app: Arc<App>) -> AppEntry {
        AppEntry {
            app,
            kfs: Arc::new(Vec::new()),
            version: next_version(),
            positions: None,
        }
    }
}

impl Cache {
    pub(crate) fn kfs_mut(&mut self, appid: &str) -> Option<&mut Vec<Kf>> {
        self.apps.get_mut(appid).map(|entry| {
            entry.version = next_version();
            entry.positions = None;
            Arc::make_mut(&mut entry.kfs)
        })
    }

    /// An account by name, found without comparing it with every other (the nickname
    /// change of a busy server looks one up per request).
    pub(crate) fn kf_by_account_mut(&mut self, appid: &str, account: &str) -> Option<&mut Kf> {
        let entry = self.apps.get_mut(appid)?;
        entry.version = next_version();
        let kfs = &entry.kfs;
        let positions = entry.positions.get_or_insert_with(|| {
            kfs.iter()
                .enumerate()
                .map(|(at, kf)| (kf.kf_account.clone(), at))
                .collect()
        });
        let at = *positions.get(account)?;
        Arc::make_mut(&mut entry.kfs).get_mut(at)
    }

    pub(crate) fn kf_mut(&mut self, appid: &str, kf_id: i64) -> Option<&mut Kf> {
        self.kfs_mut(appid)?.iter_mut().find(|kf| kf.kf_id == kf_id)
    }

    /// Adds a token; with `supersede_at`, the family's current token is superseded then.
    pub(crate) fn insert_token(
        &mut self,
        hash: Digest,
        record: TokenRecord,
        value: Option<String>,
        supersede_at: Option<i64>,
    ) {
        if record.superseded_at.is_none()
            && let Some(previous) = self.current_tokens.insert(family(&record), hash)
            && let (Some(at), Some(old)) = (supersede_at, self.tokens.get_mut(&previous))
        {
            old.superseded_at.get_or_insert(at);
            // Only the current stable token is handed out again: forget the old value.
            self.token_values.remove(&previous);
        }
        if let Some(value) = value {
            self.token_values.insert(hash, value);
        }
        self.tokens.insert(hash, record);
    }

    /// Forgets tokens that expired before `cutoff` (the database forgets the same).
    pub(crate) fn purge_tokens(&mut self, cutoff: i64) {
        self.tokens.retain(|_, record| record.expires_at >= cutoff);
        let tokens = &self.tokens;
        self.current_tokens
            .retain(|_, hash| tokens.contains_key(hash));
        self.token_values
            .retain(|hash, _| tokens.contains_key(hash));
    }

    /// Forgets an app or platform with everything it owns.
    pub(crate) fn remove_owner(&mut self, owner: &str) {
        self.apps.remove(owner);
        self.components.remove(owner);
        self.tokens.retain(|_, record| {
            &*record.appid != owner && record.component.as_deref() != Some(owner)
        });
        let tokens = &self.tokens;
        self.current_tokens
            .retain(|_, hash| tokens.contains_key(hash));
        self.token_values
            .retain(|hash, _| tokens.contains_key(hash));
        self.authorizations
            .retain(|(component, appid), _| component != owner && appid != owner);
        self.tickets.retain(|_, (component, _)| component != owner);
    }
}
