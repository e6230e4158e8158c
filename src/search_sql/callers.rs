//! At most N `datastore_search_sql` queries at a time per caller, so that one caller cannot
//! hold every connection of the endpoint's small pool (issue 21: four abandoned queries shut it
//! for everyone). Over the limit the query is refused at once, before it is parsed or waits
//! for a connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Who is counted: the API token when the caller is identified by a valid one (a signed token
/// cannot be made up, so a caller cannot dodge the limit by inventing tokens), else the
/// client's address — behind nginx, nginx's: anonymous callers then share one count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    Token(String),
    Address(Option<IpAddr>),
}

/// The queries running per caller.
pub struct PerCaller {
    max: usize,
    running: Arc<Mutex<HashMap<Caller, usize>>>,
}

/// One running query of a caller; the count goes down when it is dropped (answered, failed,
/// or abandoned by its client).
pub struct Slot {
    caller: Caller,
    running: Arc<Mutex<HashMap<Caller, usize>>>,
}

impl PerCaller {
    pub fn new(max: usize) -> PerCaller {
        PerCaller {
            max,
            running: Arc::default(),
        }
    }

    /// A slot for `caller`, or None when it already runs `max` queries.
    pub fn try_take(&self, caller: Caller) -> Option<Slot> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let n = running.entry(caller.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            caller,
            running: self.running.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        // Callers with nothing running are forgotten: the map holds only running queries.
        if let Some(n) = running.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_has_its_own_count_and_slots_come_back() {
        let limits = PerCaller::new(2);
        let ip = Caller::Address(Some("10.0.0.1".parse().unwrap()));
        let token = Caller::Token("jti-1".into());
        let a = limits.try_take(ip.clone()).unwrap();
        let _b = limits.try_take(ip.clone()).unwrap();
        assert!(
            limits.try_take(ip.clone()).is_none(),
            "third of the same caller"
        );
        let _t = limits.try_take(token.clone()).unwrap();
        assert!(limits.try_take(token.clone()).is_some(), "another caller");
        drop(a);
        assert!(limits.try_take(ip.clone()).is_some(), "a slot given back");
        assert!(limits.running.lock().unwrap().len() <= 2);
    }

    #[test]
    fn idle_callers_are_forgotten() {
        let limits = PerCaller::new(1);
        for i in 0..100u8 {
            let s = limits.try_take(Caller::Address(Some([10, 0, 0, i].into())));
            assert!(s.is_some());
        }
        assert!(limits.running.lock().unwrap().is_empty());
    }
}
