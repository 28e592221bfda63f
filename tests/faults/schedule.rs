//! A seeded random schedule of faults: the same seed gives the same faults
//! in the same order, each held for the same time (what the members and
//! clients do meanwhile depends on timing, so a replay is close, not
//! exact).

use std::fmt;
use std::time::Duration;

use jackrabbit_dlm::rng::Rng;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every link passing again.
    Heal,
    /// Links cut between `side` and the rest, both ways.
    Partition(Vec<usize>),
    /// One direction of one link cut.
    Cut(usize, usize),
    /// One direction of one link slowed by this many milliseconds a chunk.
    Delay(usize, usize, u64),
    /// Every connection closed at once; the members open them again.
    Bounce,
    Kill(usize),
    Restart(usize),
    Pause(usize),
    Resume(usize),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Heal => write!(f, "heal"),
            Fault::Partition(side) => write!(f, "partition {side:?} from the rest"),
            Fault::Cut(from, to) => write!(f, "cut {from}->{to}"),
            Fault::Delay(from, to, ms) => write!(f, "delay {from}->{to} by {ms} ms"),
            Fault::Bounce => write!(f, "bounce every connection"),
            Fault::Kill(i) => write!(f, "kill -9 member {i}"),
            Fault::Restart(i) => write!(f, "restart member {i}"),
            Fault::Pause(i) => write!(f, "SIGSTOP member {i}"),
            Fault::Resume(i) => write!(f, "SIGCONT member {i}"),
        }
    }
}

/// The schedule, and which members it has taken down.
pub struct Schedule {
    rng: Rng,
    n: usize,
    killed: Vec<bool>,
    paused: Vec<bool>,
}

impl Schedule {
    pub fn new(seed: u64, n: usize) -> Schedule {
        Schedule {
            rng: Rng::new(seed, 1),
            n,
            killed: vec![false; n],
            paused: vec![false; n],
        }
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(u32::try_from(n).expect("a small choice")) as usize
    }

    fn member(&mut self) -> usize {
        self.below(self.n)
    }

    /// Two different members.
    fn pair(&mut self) -> (usize, usize) {
        let from = self.member();
        let to = (from + 1 + self.below(self.n - 1)) % self.n;
        (from, to)
    }

    /// The next fault and how long to hold it before the next.
    pub fn next(&mut self) -> (Fault, Duration) {
        let fault = self.choose();
        match fault {
            Fault::Kill(i) => (self.killed[i], self.paused[i]) = (true, false),
            Fault::Restart(i) => self.killed[i] = false,
            Fault::Pause(i) => self.paused[i] = true,
            Fault::Resume(i) => self.paused[i] = false,
            _ => {}
        }
        let hold = Duration::from_millis(200 + self.rng.below(1000) as u64);
        (fault, hold)
    }

    fn choose(&mut self) -> Fault {
        let down: Vec<usize> = (0..self.n)
            .filter(|&i| self.killed[i] || self.paused[i])
            .collect();
        // Bring one back half the time, and always before all are down.
        if !down.is_empty() && (down.len() + 1 >= self.n || self.below(2) == 0) {
            let i = down[self.below(down.len())];
            return if self.killed[i] {
                Fault::Restart(i)
            } else {
                Fault::Resume(i)
            };
        }
        match self.below(10) {
            0 | 1 => Fault::Heal,
            2 => {
                let (from, to) = self.pair();
                Fault::Cut(from, to)
            }
            3 => {
                let (from, to) = self.pair();
                Fault::Delay(from, to, 10 + self.rng.below(300) as u64)
            }
            4 => Fault::Bounce,
            5 | 6 => {
                let size = 1 + self.below(self.n / 2);
                let mut side: Vec<usize> = Vec::new();
                while side.len() < size {
                    let i = self.member();
                    if !side.contains(&i) {
                        side.push(i);
                    }
                }
                side.sort_unstable();
                Fault::Partition(side)
            }
            choice => {
                let i = self.member();
                match (self.killed[i], self.paused[i], choice) {
                    (true, _, _) => Fault::Restart(i),
                    (false, true, 7) => Fault::Kill(i),
                    (false, true, _) => Fault::Resume(i),
                    (false, false, 7 | 8) => Fault::Kill(i),
                    (false, false, _) => Fault::Pause(i),
                }
            }
        }
    }
}
