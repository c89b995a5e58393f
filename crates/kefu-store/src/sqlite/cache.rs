//! The in-memory image of the database that serves every read.
//!
//! One process owns the SQLite file (a lock file enforces it), so the image is exact:
//! the writer thread changes it only after the change it mirrors has committed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{App, Digest, Kf, TokenChannel, TokenRecord};

/// How long a token is kept after it expired, so that it keeps answering 42001
/// rather than 40001 (seconds).
pub(crate) const TOKEN_RETENTION_SECS: i64 = 7 * 24 * 3600;

pub(crate) struct AppEntry {
    pub(crate) app: Arc<App>,
    /// Copy-on-write: readers clone the `Arc`, the writer `make_mut`s it.
    pub(crate) kfs: Arc<Vec<Kf>>,
}

#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) apps: HashMap<String, AppEntry>,
    pub(crate) tokens: HashMap<Digest, TokenRecord>,
    pub(crate) current_tokens: HashMap<(Arc<str>, TokenChannel), Digest>,
}

impl Cache {
    pub(crate) fn kfs_mut(&mut self, appid: &str) -> Option<&mut Vec<Kf>> {
        self.apps
            .get_mut(appid)
            .map(|entry| Arc::make_mut(&mut entry.kfs))
    }

    pub(crate) fn kf_mut(&mut self, appid: &str, kf_id: i64) -> Option<&mut Kf> {
        self.kfs_mut(appid)?.iter_mut().find(|kf| kf.kf_id == kf_id)
    }

    pub(crate) fn insert_token(&mut self, hash: Digest, record: TokenRecord, superseded_at: i64) {
        let key = (record.appid.clone(), record.channel);
        if let Some(previous) = self.current_tokens.insert(key, hash)
            && let Some(old) = self.tokens.get_mut(&previous)
        {
            old.superseded_at.get_or_insert(superseded_at);
        }
        self.tokens.insert(hash, record);
    }

    /// Forgets tokens that expired before `cutoff` (the database forgets the same).
    pub(crate) fn purge_tokens(&mut self, cutoff: i64) {
        self.tokens.retain(|_, record| record.expires_at >= cutoff);
        let tokens = &self.tokens;
        self.current_tokens
            .retain(|_, hash| tokens.contains_key(hash));
    }

    pub(crate) fn remove_app(&mut self, appid: &str) {
        self.apps.remove(appid);
        self.tokens.retain(|_, record| &*record.appid != appid);
        self.current_tokens
            .retain(|(owner, _), _| &**owner != appid);
    }
}
