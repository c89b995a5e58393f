//! Fault injection (README, "Endpoints"): rules that make a WeChat path answer an
//! errcode, wait, or answer `-1` after doing the work ("-1 but applied", as WeChat really does).
//!
//! Rules live in the memory of each server process; with several instances, set them
//! on each (or on the one the load balancer pins the client to).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kefu_api::admin::{FaultView, NewFault};
use rand::RngExt;

/// The rules in force.
#[derive(Debug, Default)]
pub struct Faults {
    next_id: AtomicU64,
    count: AtomicUsize,
    rules: Mutex<Vec<FaultView>>,
}

impl Faults {
    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<FaultView>> {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether any rule is in force (checked on every call, so it is one atomic load).
    #[must_use]
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Adds a rule.
    pub fn add(&self, rule: NewFault) -> FaultView {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let view = FaultView {
            id,
            remaining: rule.times,
            rule,
        };
        let mut rules = self.rules();
        rules.push(view.clone());
        self.count.store(rules.len(), Ordering::Relaxed);
        view
    }

    /// The rules, oldest first.
    #[must_use]
    pub fn list(&self) -> Vec<FaultView> {
        self.rules().clone()
    }

    /// Removes a rule; whether it existed.
    pub fn remove(&self, id: u64) -> bool {
        let mut rules = self.rules();
        let before = rules.len();
        rules.retain(|rule| rule.id != id);
        self.count.store(rules.len(), Ordering::Relaxed);
        rules.len() != before
    }

    /// The first rule that fires for this call, using one of its `times`, with its id.
    pub fn fire(&self, appid: Option<&str>, path: &str) -> Option<(u64, NewFault)> {
        let mut rules = self.rules();
        let index = rules.iter().position(|view| {
            let rule = &view.rule;
            rule.path == path
                && rule
                    .appid
                    .as_deref()
                    .is_none_or(|wanted| Some(wanted) == appid)
                && rule
                    .probability
                    .is_none_or(|p| rand::rng().random::<f64>() < p)
        })?;
        let fired = (rules[index].id, rules[index].rule.clone());
        if let Some(remaining) = rules[index].remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                rules.remove(index);
                self.count.store(rules.len(), Ordering::Relaxed);
            }
        }
        Some(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, times: Option<u64>) -> NewFault {
        NewFault {
            appid: Some("wx1".to_owned()),
            path: path.to_owned(),
            errcode: 40001,
            times,
            probability: None,
            latency_ms: 0,
            applied: false,
        }
    }

    #[test]
    fn rules_fire_their_times_then_go() {
        let faults = Faults::default();
        assert!(!faults.active());
        let view = faults.add(rule("/a", Some(2)));
        assert!(faults.active());
        assert!(faults.fire(Some("wx2"), "/a").is_none(), "another app");
        assert!(faults.fire(Some("wx1"), "/b").is_none(), "another path");
        assert!(faults.fire(Some("wx1"), "/a").is_some());
        assert_eq!(faults.list()[0].remaining, Some(1));
        assert!(faults.fire(Some("wx1"), "/a").is_some());
        assert!(faults.fire(Some("wx1"), "/a").is_none());
        assert!(!faults.active());
        let forever = faults.add(rule("/a", None));
        assert!(forever.id > view.id);
        assert!(faults.remove(forever.id));
        assert!(!faults.remove(forever.id));
    }
}
