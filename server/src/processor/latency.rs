//! A small latency histogram for processor status: log-spaced buckets (four per doubling, so a
//! quantile is within 19% of the truth) from 1 µs to about 68 s, in 420 bytes. A processor
//! keeps one for its life; 10,000 processors keep 4 MB (an `hdrhistogram` of two significant
//! digits over the same range is 21 KB each).

/// Buckets per doubling.
const PER_DOUBLING: f64 = 4.0;
/// Buckets: 2^26 µs (67 s) at four per doubling, and one for anything above.
const BUCKETS: usize = 26 * 4 + 1;

#[derive(Debug, Clone)]
pub struct Latency {
    counts: [u32; BUCKETS],
    max_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            max_us: 0,
        }
    }
}

fn bucket(us: u64) -> usize {
    let us = us.max(1) as f64;
    ((us.log2() * PER_DOUBLING) as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, µs.
fn upper(i: usize) -> f64 {
    ((i + 1) as f64 / PER_DOUBLING).exp2()
}

impl Latency {
    pub fn record(&mut self, us: u64) {
        let b = bucket(us);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.max_us = self.max_us.max(us);
    }

    /// The `q` quantile (0 to 1) in µs: the upper bound of its bucket, at most the maximum.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                // The last bucket holds everything above its range: only the maximum is known.
                if i == BUCKETS - 1 {
                    return self.max_us as f64;
                }
                return upper(i).min(self.max_us as f64);
            }
        }
        self.max_us as f64
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let mut h = Latency::default();
        for us in 1..=10_000u64 {
            h.record(us);
        }
        let p50 = h.quantile_us(0.5);
        assert!((5_000.0..=5_000.0 * 1.19).contains(&p50), "{p50}");
        let p99 = h.quantile_us(0.99);
        assert!((9_900.0..=10_000.0).contains(&p99), "{p99}");
        assert_eq!(h.max_us(), 10_000);
        assert_eq!(Latency::default().quantile_us(0.5), 0.0);
        h.record(u64::MAX);
        assert_eq!(h.quantile_us(1.0), u64::MAX as f64);
    }
}
