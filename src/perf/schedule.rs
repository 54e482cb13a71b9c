//! Send times for the open-loop request-rate mode, and the small seeded generator that
//! random inputs and Poisson gaps come from (seeded, so a run can be repeated).

use std::time::Duration;

/// SplitMix64: tiny, fast and good enough for test data and arrival gaps.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); n must be above 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Requests exactly 1/rate apart.
    Constant,
    /// Exponential gaps with mean 1/rate (a Poisson arrival process).
    Poisson,
}

/// The send time of each request, as an offset from the start of the level.
#[derive(Clone, Debug)]
pub struct Schedule {
    dist: Distribution,
    rate: f64,
    rng: Rng,
    index: u64,
    at: f64,
}

impl Schedule {
    /// `rate` is in requests per second and must be above 0.
    pub fn new(dist: Distribution, rate: f64, seed: u64) -> Self {
        Schedule {
            dist,
            rate,
            rng: Rng::new(seed),
            index: 0,
            at: 0.0,
        }
    }

    /// The offset of the next request. The first request goes at 0.
    pub fn next_offset(&mut self) -> Duration {
        let secs = match self.dist {
            // Multiplying instead of summing keeps long constant runs exact.
            Distribution::Constant => self.index as f64 / self.rate,
            Distribution::Poisson => {
                let now = self.at;
                // 1 - u lies in (0, 1], so the logarithm is finite.
                let u = 1.0 - self.rng.next_f64();
                self.at += -u.ln() / self.rate;
                now
            }
        };
        self.index += 1;
        Duration::from_secs_f64(secs)
    }
}

impl Iterator for Schedule {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_offset())
    }
}
