//! `--audit`: which client addresses were refused in a statistics interval,
//! and how often, for the statistics log (PROTOCOL.md, Counters and the
//! statistics log; upstream's collision log, without its quarantine files).
//!
//! Each connection counts its own refusals ([`Refusals`], in
//! `session::Connection`); the reactor folds them in here, by client
//! address, when the connection closes and before each statistics line,
//! whose interval's audit lines [`Audit::lines`] then writes and forgets:
//!
//! ```text
//! DLMerror/NotOwner: 10.0.0.7 1722, 10.0.0.9 3, 2001:db8::5 1
//! ```
//!
//! one line per kind refused in the interval (`AuthFailed`, `BadPayload`,
//! `NotOwner`, in that order), each a comma-separated list of `<address>
//! <count>`, the busiest first (ties by address), at most [`PER_LINE`]
//! addresses a line, further addresses on further lines of the same kind.
//! An address is the client's IP address (no port; an IPv4-mapped IPv6
//! address as IPv4).
//!
//! Never a name, an ID or a payload: nothing here sees one.
//!
//! Bounds: at most `--audit-max-addresses` addresses are tracked per
//! interval; the refusals of any further address are added to one figure
//! per kind, shown as a last piece `others <count>` of that kind's last
//! line. So an interval writes at most three times
//! `--audit-max-addresses / 100` lines (rounded up).

use std::fmt::Write as _;
use std::net::IpAddr;

use hashbrown::HashMap;

use crate::stats::Refusals;

/// Most addresses on one audit line (PROTOCOL.md).
pub const PER_LINE: usize = 100;

/// The word in an address's place for the refusals of addresses past
/// `--audit-max-addresses`.
pub const OTHERS: &str = "others";

/// The interval's refusals by client address.
#[derive(Debug)]
pub struct Audit {
    max_addresses: usize,
    by_address: HashMap<IpAddr, Refusals>,
    /// The refusals of addresses met once `max_addresses` were tracked.
    others: Refusals,
}

impl Audit {
    /// An empty table tracking at most `max_addresses` addresses per interval.
    pub fn new(max_addresses: usize) -> Audit {
        Audit {
            max_addresses: max_addresses.max(1),
            by_address: HashMap::new(),
            others: Refusals::default(),
        }
    }

    /// Adds a connection's refusals to its address's.
    pub fn add(&mut self, address: IpAddr, refusals: Refusals) {
        if refusals.is_empty() {
            return;
        }
        let address = address.to_canonical();
        if let Some(known) = self.by_address.get_mut(&address) {
            known.add(refusals);
        } else if self.by_address.len() < self.max_addresses {
            self.by_address.insert(address, refusals);
        } else {
            self.others.add(refusals);
        }
    }

    /// The interval's audit lines (without time stamps), and an empty table
    /// for the next interval.
    pub fn lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut counts: Vec<(u64, IpAddr)> = Vec::new();
        for (k, kind) in Refusals::KINDS.iter().enumerate() {
            counts.clear();
            counts.extend(
                self.by_address
                    .iter()
                    .map(|(&address, refusals)| (refusals.counts()[k], address))
                    .filter(|&(n, _)| n > 0),
            );
            // The busiest first; ties by address, so the lines are the same
            // for the same refusals.
            counts.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let others = self.others.counts()[k];
            let first = lines.len();
            for chunk in counts.chunks(PER_LINE) {
                let mut line = format!("DLMerror/{kind}:");
                for (i, (n, address)) in chunk.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    let _ = write!(line, "{comma} {address} {n}");
                }
                lines.push(line);
            }
            if others > 0 {
                match lines.get_mut(first..).and_then(<[String]>::last_mut) {
                    Some(last) => {
                        let _ = write!(last, ", {OTHERS} {others}");
                    }
                    None => lines.push(format!("DLMerror/{kind}: {OTHERS} {others}")),
                }
            }
        }
        self.by_address.clear();
        if self.by_address.capacity() > 2 * PER_LINE {
            // A busy interval's table is not kept for a quiet one.
            self.by_address.shrink_to(PER_LINE);
        }
        self.others = Refusals::default();
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn refusals(not_owner: u64, bad_payload: u64, auth_failed: u64) -> Refusals {
        Refusals {
            not_owner,
            bad_payload,
            auth_failed,
        }
    }

    /// Each case: the cap, what is added in turn as `(address, (NotOwner,
    /// BadPayload, AuthFailed))`, and the interval's lines.
    #[test]
    fn one_line_per_kind_busiest_first_the_rest_past_the_cap() {
        type Case<'a> = (usize, &'a [(&'a str, (u64, u64, u64))], &'a [&'a str]);
        let cases: [Case; 2] = [
            (
                10,
                &[
                    ("10.0.0.9", (3, 0, 0)),
                    ("10.0.0.7", (1000, 1, 0)),
                    ("10.0.0.7", (722, 0, 0)),
                    ("2001:db8::5", (3, 0, 2)),
                    ("::ffff:10.0.0.9", (0, 4, 0)),
                    ("10.0.0.1", (0, 0, 0)),
                ],
                &[
                    "DLMerror/AuthFailed: 2001:db8::5 2",
                    "DLMerror/BadPayload: 10.0.0.9 4, 10.0.0.7 1",
                    "DLMerror/NotOwner: 10.0.0.7 1722, 10.0.0.9 3, 2001:db8::5 3",
                ],
            ),
            (
                2,
                &[
                    ("10.0.0.1", (5, 0, 0)),
                    ("10.0.0.2", (1, 0, 0)),
                    ("10.0.0.3", (7, 0, 1)),
                    ("10.0.0.4", (2, 0, 0)),
                    ("10.0.0.1", (1, 0, 0)),
                ],
                &[
                    "DLMerror/AuthFailed: others 1",
                    "DLMerror/NotOwner: 10.0.0.1 6, 10.0.0.2 1, others 9",
                ],
            ),
        ];
        for (max, added, lines) in cases {
            let mut audit = Audit::new(max);
            for &(address, (n, b, a)) in added {
                audit.add(ip(address), refusals(n, b, a));
            }
            assert_eq!(audit.lines(), lines);
            // The next interval starts afresh, the cap too.
            assert!(audit.lines().is_empty());
            audit.add(ip("10.0.0.3"), refusals(1, 0, 0));
            assert_eq!(audit.lines(), ["DLMerror/NotOwner: 10.0.0.3 1"]);
        }
    }

    #[test]
    fn at_most_a_hundred_addresses_a_line() {
        let mut audit = Audit::new(1000);
        for i in 0..=250u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            audit.add(address, refusals(u64::from(i) + 1, 0, 0));
        }
        let lines = audit.lines();
        assert_eq!(lines.len(), 3);
        let counts = |line: &str| line.split(", ").count();
        assert_eq!(
            (counts(&lines[0]), counts(&lines[1]), counts(&lines[2])),
            (100, 100, 51)
        );
        assert!(lines[0].starts_with("DLMerror/NotOwner: 10.0.0.250 251, 10.0.0.249 250,"));
        assert!(lines[2].ends_with(", 10.0.0.0 1"));
        assert!(lines[1].starts_with("DLMerror/NotOwner: 10.0.0.150 151,"));
    }
}
