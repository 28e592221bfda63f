//! `--verify` for the shared modes (`rw`, `semaphore`): who holds each
//! resource, as the clients see it, checked at every grant.
//!
//! Shared holders may read a resource together, so the counter check of
//! the exclusive modes (every holder increments a counter) cannot apply.
//! Instead every fighter of the run reports to one [`Occupancy`]: a grant
//! when it reads `Locked` (with the mode it asked for and the reply's
//! fencing token), and its leaving *before* it writes its `Unlock`. A
//! client leaves before the server can release it, and reads a grant after
//! the server made it, so the occupancy seen here is never smaller than
//! the server's: a violation found here is one the server committed (or a
//! hold that ran out while its fighter still held it, which `--expire`
//! makes possible on purpose), never an artefact of the generator.
//!
//! Checked at every grant, per resource ([`Ledger::grant`]):
//! - an exclusive grant finds nobody else holding, a shared one no
//!   exclusive holder and fewer shares than the limit;
//! - tokens increase in the order of grant: an exclusive grant's token is
//!   above every token seen on the resource before (everyone granted
//!   before it has left, so was seen), a shared grant's above every
//!   exclusive token seen before (shares granted together in one turn may
//!   be read in any order, across connections and threads, so their
//!   tokens are only ordered against the exclusive holds around them);
//! - a grant without a token (a server without fencing tokens) is checked
//!   for occupancy only.
//!
//! It never touches a socket and never reads the clock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Violations described in full in a report; the rest are counted.
const EXAMPLES: usize = 5;

/// One resource's holders as the clients see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Shared holders now.
    pub shared: u32,
    /// Exclusive holders now (more than one is a violation, kept to go on
    /// counting).
    pub exclusive: u32,
    /// The highest token seen on the resource.
    pub max_token: u64,
    /// The highest token of an exclusive grant seen on the resource.
    pub max_exclusive_token: u64,
    /// The most shared holders seen at once.
    pub most_shared: u32,
}

impl Ledger {
    /// Records a grant in `shared` mode with `token`, under a limit of
    /// `limit` shares; describes the violation, if it is one. The grant is
    /// recorded either way, so a violation does not hide the next.
    pub fn grant(&mut self, shared: bool, token: Option<u64>, limit: u32) -> Result<(), String> {
        let mut wrong = Vec::new();
        if shared {
            if self.exclusive > 0 {
                wrong.push(format!(
                    "a share granted beside {} exclusive holder(s)",
                    self.exclusive
                ));
            }
            if self.shared >= limit {
                wrong.push(format!("share {} of a limit of {limit}", self.shared + 1));
            }
        } else if self.exclusive + self.shared > 0 {
            wrong.push(format!(
                "an exclusive hold granted beside {} exclusive and {} shared holder(s)",
                self.exclusive, self.shared
            ));
        }
        if let Some(token) = token {
            let bound = if shared {
                self.max_exclusive_token
            } else {
                self.max_token
            };
            if token <= bound {
                wrong.push(format!(
                    "token {token} granted after {bound} ({})",
                    if shared {
                        "the last exclusive hold's"
                    } else {
                        "the highest before it"
                    }
                ));
            }
            self.max_token = self.max_token.max(token);
            if !shared {
                self.max_exclusive_token = self.max_exclusive_token.max(token);
            }
        }
        if shared {
            self.shared += 1;
            self.most_shared = self.most_shared.max(self.shared);
        } else {
            self.exclusive += 1;
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }

    /// Records that a holder in `shared` mode is about to release.
    pub fn leave(&mut self, shared: bool) {
        let count = if shared {
            &mut self.shared
        } else {
            &mut self.exclusive
        };
        *count = count.saturating_sub(1);
    }
}

/// Every resource's [`Ledger`], shared by all generator threads of a run.
#[derive(Debug)]
pub struct Occupancy {
    ledgers: Vec<Mutex<Ledger>>,
    limit: u32,
    grants: AtomicU64,
    violations: AtomicU64,
    examples: Mutex<Vec<String>>,
}

/// What an [`Occupancy`] found in a run.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Grants checked.
    pub grants: u64,
    pub violations: u64,
    /// The first few violations, described.
    pub examples: Vec<String>,
    /// The most shared holders seen at once on any resource.
    pub most_shared: u32,
}

impl Occupancy {
    /// Ledgers for `resources` resources whose shares are limited to `limit`.
    pub fn new(resources: u32, limit: u32) -> Occupancy {
        Occupancy {
            ledgers: (0..resources).map(|_| Mutex::default()).collect(),
            limit,
            grants: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            examples: Mutex::new(Vec::new()),
        }
    }

    fn ledger(&self, resource: u32) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledgers[resource as usize]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fighter read a grant of `resource`.
    pub fn grant(&self, resource: u32, shared: bool, token: Option<u64>) {
        self.grants.fetch_add(1, Ordering::Relaxed);
        let verdict = self.ledger(resource).grant(shared, token, self.limit);
        if let Err(why) = verdict {
            self.violations.fetch_add(1, Ordering::Relaxed);
            let mut examples = self
                .examples
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if examples.len() < EXAMPLES {
                examples.push(format!("resource {resource}: {why}"));
            }
        }
    }

    /// A holder of `resource` is about to send its `Unlock`.
    pub fn leave(&self, resource: u32, shared: bool) {
        self.ledger(resource).leave(shared);
    }

    /// What was found so far.
    pub fn findings(&self) -> Findings {
        Findings {
            grants: self.grants.load(Ordering::Relaxed),
            violations: self.violations.load(Ordering::Relaxed),
            examples: self
                .examples
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            most_shared: (0..self.ledgers.len())
                .map(|r| self.ledgers[r].lock().map_or(0, |l| l.most_shared))
                .max()
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_beside_readers_then_a_writer_alone() {
        let mut l = Ledger::default();
        assert_eq!(l.grant(true, Some(10), 3), Ok(()));
        assert_eq!(l.grant(true, Some(12), 3), Ok(()));
        // Granted in the same turn as 12, read after it: fine.
        assert_eq!(l.grant(true, Some(11), 3), Ok(()));
        assert_eq!(l.most_shared, 3);
        for _ in 0..3 {
            l.leave(true);
        }
        assert_eq!(l.grant(false, Some(13), 3), Ok(()));
        l.leave(false);
        assert_eq!(l.grant(true, Some(14), 3), Ok(()));
        assert_eq!((l.shared, l.exclusive), (1, 0));
    }

    #[test]
    fn an_exclusive_grant_beside_a_holder_is_a_violation() {
        let mut l = Ledger::default();
        l.grant(true, Some(1), 5).unwrap();
        let why = l.grant(false, Some(2), 5).unwrap_err();
        assert!(
            why.contains("exclusive hold granted beside 0 exclusive and 1 shared"),
            "{why}"
        );
        // Recorded anyway: a share now meets an exclusive holder too.
        let why = l.grant(true, Some(3), 5).unwrap_err();
        assert!(why.contains("beside 1 exclusive"), "{why}");
        let mut l = Ledger::default();
        l.grant(false, Some(1), 5).unwrap();
        assert!(l.grant(false, Some(2), 5).is_err(), "two writers at once");
    }

    #[test]
    fn more_shares_than_the_limit_is_a_violation() {
        let mut l = Ledger::default();
        l.grant(true, Some(1), 2).unwrap();
        l.grant(true, Some(2), 2).unwrap();
        let why = l.grant(true, Some(3), 2).unwrap_err();
        assert_eq!(why, "share 3 of a limit of 2");
        l.leave(true);
        l.leave(true);
        l.leave(true);
        assert_eq!(l.grant(true, Some(4), 2), Ok(()), "room again");
    }

    #[test]
    fn tokens_must_increase_in_the_order_of_grant() {
        let mut l = Ledger::default();
        l.grant(false, Some(7), 4).unwrap();
        l.leave(false);
        let why = l.grant(false, Some(7), 4).unwrap_err();
        assert!(why.contains("token 7 granted after 7"), "{why}");
        l.leave(false);
        // A share after an exclusive hold must have a higher token too.
        let why = l.grant(true, Some(5), 4).unwrap_err();
        assert!(why.contains("the last exclusive hold's"), "{why}");
        l.leave(true);
        // An exclusive grant after shares must top every share's token.
        l.grant(true, Some(20), 4).unwrap();
        l.leave(true);
        assert!(l.grant(false, Some(19), 4).is_err());
        // Without tokens, only occupancy is checked.
        let mut l = Ledger::default();
        assert_eq!(l.grant(false, None, 4), Ok(()));
    }

    #[test]
    fn occupancy_counts_and_describes_violations_across_resources() {
        let o = Occupancy::new(2, 1);
        o.grant(0, true, Some(1));
        o.grant(1, true, Some(2));
        o.grant(1, true, Some(3));
        o.leave(0, true);
        o.grant(0, false, Some(4));
        let f = o.findings();
        assert_eq!((f.grants, f.violations, f.most_shared), (4, 1, 2));
        assert_eq!(f.examples, ["resource 1: share 2 of a limit of 1"]);
    }
}
