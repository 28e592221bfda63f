//! Small seeded pseudo-random generators, for runs that must repeat: the
//! tests' and benchmarks' random inputs, the fuzz targets' choices, and
//! lockfight's fighters.
//!
//! Neither is fit for anything an adversary may guess (the client's default
//! IDs come from the operating system's generator instead).
//!
//! - [`splitmix64`] steps a plain `u64` state: each call gives a
//!   well-mixed word, and consecutive or neighbouring seeds give unrelated
//!   words, so it also derives seeds.
//! - [`Rng`] is xorshift64*: a few shifts and a multiply per number, for a
//!   hot path, seeded through splitmix64 from a run's seed and a stream
//!   number.

/// splitmix64's increment: the golden ratio as a 64-bit fraction.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Advances `state` and returns the next word of the splitmix64 sequence
/// that starts from it.
///
/// ```
/// use jackrabbit_dlm::rng::splitmix64;
///
/// let mut state = 1;
/// let first = splitmix64(&mut state);
/// assert_ne!(first, splitmix64(&mut state));
/// let mut again = 1;
/// assert_eq!(splitmix64(&mut again), first, "the same seed, the same words");
/// ```
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The splitmix64 word that follows `seed`, leaving no state behind: a
/// seed's bits spread over the whole word.
fn mix(seed: u64) -> u64 {
    let mut state = seed;
    splitmix64(&mut state)
}

/// A stream of pseudo-random numbers: xorshift64*.
#[derive(Debug, Clone)]
pub struct Rng {
    /// Never zero: xorshift maps zero to zero forever.
    state: u64,
}

impl Rng {
    /// The stream number `stream` of the run seeded with `seed`. Streams of
    /// one seed, even neighbouring ones, are unrelated.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let state = mix(seed ^ mix(stream));
        Rng {
            state: if state == 0 { MULTIPLIER } else { state },
        }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(MULTIPLIER)
    }

    /// A number in `0..n` (`n` > 0), by multiply-and-shift instead of a
    /// division; the bias is below one part in 2^32 / `n`, far below what a
    /// test or benchmark can notice.
    pub fn below(&mut self, n: u32) -> u32 {
        let scaled = (self.next_u64() >> 32) * u64::from(n);
        // A 32-bit number times one below 2^32, shifted down 32: below `n`.
        u32::try_from(scaled >> 32).unwrap_or(u32::MAX)
    }
}

/// xorshift64*'s output multiplier (also the stand-in for a zero state).
const MULTIPLIER: u64 = 0x2545_F491_4F6C_DD1D;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of the reference implementation seeded with 0.
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut state), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(&mut state), 0x06C4_5D18_8009_454F);
        assert_eq!(state, GAMMA.wrapping_mul(3));
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7, 3);
        let mut b = Rng::new(7, 3);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn streams_differ() {
        let mut a = Rng::new(7, 3);
        let mut b = Rng::new(7, 4);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(1, 1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = r.below(10);
            assert!(v < 10);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.below(1), 0);
    }
}
