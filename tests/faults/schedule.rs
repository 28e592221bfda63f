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
    /// SIGTERM: a leader hands over first; it is down until a `Restart`.
    Terminate(usize),
    /// The member's monotonic clock stepped forward by this many ms; with
    /// `true`, the leader's instead, if the members up name one.
    StepMonotonic(usize, u64, bool),
    /// The member's wall clock stepped by this many ms, either way.
    StepWall(usize, i64),
    /// The network healed, the member removed (`RemoveMember`) and
    /// stopped (SIGTERM), its data directory dropped.
    Remove(usize),
    /// The network healed, the removed member started on an empty data
    /// directory with `--join` and added back (`AddMember`).
    Rejoin(usize),
}

impl Fault {
    /// The kind of fault, for a run's tally.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Heal => "heal",
            Fault::Partition(_) => "partition",
            Fault::Cut(..) => "cut",
            Fault::Delay(..) => "delay",
            Fault::Bounce => "bounce",
            Fault::Kill(_) => "kill -9",
            Fault::Restart(_) => "restart",
            Fault::Pause(_) => "SIGSTOP",
            Fault::Resume(_) => "SIGCONT",
            Fault::Terminate(_) => "SIGTERM",
            Fault::StepMonotonic(..) => "monotonic step",
            Fault::StepWall(..) => "wall step",
            Fault::Remove(_) => "remove",
            Fault::Rejoin(_) => "add back",
        }
    }
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
            Fault::Terminate(i) => write!(f, "SIGTERM member {i}"),
            Fault::StepMonotonic(_, ms, true) => {
                write!(f, "step the leader's monotonic clock forward by {ms} ms")
            }
            Fault::StepMonotonic(i, ms, false) => {
                write!(f, "step member {i}'s monotonic clock forward by {ms} ms")
            }
            Fault::StepWall(i, ms) => write!(f, "step member {i}'s wall clock by {ms:+} ms"),
            Fault::Remove(i) => write!(f, "heal, remove member {i} and stop it"),
            Fault::Rejoin(i) => write!(f, "heal, add member {i} back on an empty data directory"),
        }
    }
}

/// The schedule, and which members it has taken down.
pub struct Schedule {
    rng: Rng,
    n: usize,
    killed: Vec<bool>,
    paused: Vec<bool>,
    removed: Vec<bool>,
}

impl Schedule {
    pub fn new(seed: u64, n: usize) -> Schedule {
        Schedule {
            rng: Rng::new(seed, 1),
            n,
            killed: vec![false; n],
            paused: vec![false; n],
            removed: vec![false; n],
        }
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(u32::try_from(n).expect("a small choice")) as usize
    }

    fn member(&mut self) -> usize {
        self.below(self.n)
    }

    /// A member that was not removed.
    fn present(&mut self) -> usize {
        let present: Vec<usize> = (0..self.n).filter(|&i| !self.removed[i]).collect();
        present[self.below(present.len())]
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
            Fault::Kill(i) | Fault::Terminate(i) => {
                (self.killed[i], self.paused[i]) = (true, false);
            }
            Fault::Remove(i) => self.removed[i] = true,
            Fault::Rejoin(i) => self.removed[i] = false,
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
            .filter(|&i| self.killed[i] || self.paused[i] || self.removed[i])
            .collect();
        // Bring one back half the time, and always before all are down;
        // a removed one only when every other is up (adding it back must
        // commit).
        if !down.is_empty() && (down.len() + 1 >= self.n || self.below(2) == 0) {
            let stopped: Vec<usize> = down.iter().copied().filter(|&i| !self.removed[i]).collect();
            if stopped.is_empty() {
                return Fault::Rejoin(down[self.below(down.len())]);
            }
            let i = stopped[self.below(stopped.len())];
            return if self.killed[i] {
                Fault::Restart(i)
            } else {
                Fault::Resume(i)
            };
        }
        match self.below(14) {
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
            10 => {
                let (i, ms) = (self.member(), 100 + self.rng.below(2900) as u64);
                Fault::StepMonotonic(i, ms, self.below(2) == 0)
            }
            11 => {
                let ms = i64::from(1000 + self.rng.below(3_599_000));
                let i = self.member();
                Fault::StepWall(i, if self.below(2) == 0 { ms } else { -ms })
            }
            // Removed only with every member up, one at a time.
            12 if down.is_empty() => Fault::Remove(self.member()),
            12 => Fault::Heal,
            choice => {
                let i = self.present();
                match (self.killed[i], self.paused[i], choice) {
                    (true, _, _) => Fault::Restart(i),
                    (false, true, 7) => Fault::Kill(i),
                    (false, true, _) => Fault::Resume(i),
                    (false, false, 7 | 8) => Fault::Kill(i),
                    (false, false, 13) => Fault::Terminate(i),
                    (false, false, _) => Fault::Pause(i),
                }
            }
        }
    }
}
