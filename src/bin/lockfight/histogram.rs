//! Latency histogram with log-linear buckets.
//!
//! Every answered request records its latency here, so recording must be a
//! few instructions and no allocation. Values (nanoseconds) below 64 get a
//! bucket each; above that every power of two is split into 64 equal
//! buckets, which bounds the error of any reported percentile to about 1.6%
//! over the whole range from nanoseconds to hours.

use std::time::Duration;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Enough powers of two for 2^64 nanoseconds.
#[allow(clippy::cast_possible_truncation)] // a few hundred buckets
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of latencies per bucket.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

/// The bucket that holds `v`.
fn index_of(v: u64) -> usize {
    if v < SUB {
        #[allow(clippy::cast_possible_truncation)] // below SUB, a small number
        return v as usize;
    }
    let top = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = top - SUB_BITS;
    let mantissa = v >> shift; // in SUB..2*SUB
    // Below BUCKETS, a few hundred.
    #[allow(clippy::cast_possible_truncation)]
    let index = ((shift as u64 + 1) * SUB + (mantissa - SUB)) as usize;
    index
}

/// The largest value that falls into bucket `i`.
fn highest_in(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let mantissa = SUB + i % SUB;
    // The top bucket's edge is 2^64, one past u64::MAX.
    let edge = u128::from(mantissa + 1) << shift;
    u64::try_from(edge - 1).unwrap_or(u64::MAX)
}

impl Histogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let v = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index_of(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Adds every count of `other` to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Number of recorded latencies.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency below which a fraction `q` (0..=1) of the records fall,
    /// as the upper edge of its bucket (never above the largest record).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        // `q` is in 0..=1, so the rank is at most `total`; `as` saturates.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(highest_in(i).min(self.max));
            }
        }
        Duration::from_nanos(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_contain_their_values() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 40, u64::MAX / 3, u64::MAX]) {
            let i = index_of(v);
            assert!(i < BUCKETS);
            assert!(i >= last, "index not monotone at {v}");
            last = i;
            assert!(highest_in(i) >= v, "bucket {i} too low for {v}");
            if i > 0 {
                assert!(highest_in(i - 1) < v, "bucket {i} too high for {v}");
            }
        }
    }

    #[test]
    fn relative_error_is_small() {
        for v in [100u64, 1_000, 12_345, 999_999, 123_456_789] {
            let hi = highest_in(index_of(v));
            assert!((hi - v) as f64 / v as f64 <= 1.0 / 64.0 + 1e-9);
        }
    }

    #[test]
    fn quantiles_of_a_uniform_set() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 - 500.0).abs() <= 10.0, "p50 {p50}");
        assert!((p99 - 990.0).abs() <= 20.0, "p99 {p99}");
        assert_eq!(h.quantile(1.0), Duration::from_micros(1000));
        let mut sum = Histogram::default();
        sum.merge(&h);
        sum.merge(&h);
        assert_eq!(sum.count(), 2000);
        assert_eq!(sum.quantile(0.5), h.quantile(0.5));
    }
}
