//! A lock-free moving average of durations, for choosing between two ways of answering by what
//! each has lately cost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An exponentially weighted moving average in nanoseconds; each sample moves it 1/8 of the way.
/// Racing updates may lose a sample, which an average of many can afford.
#[derive(Debug, Default)]
pub struct Ewma(AtomicU64);

impl Ewma {
    /// Moves the average toward `sample`; the first sample sets it.
    pub fn record(&self, sample: Duration) {
        let sample = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            let delta = (sample as i128 - old as i128) / 8;
            (old as i128 + delta).max(1) as u64
        };
        self.0.store(new, Ordering::Relaxed);
    }

    /// None until the first sample.
    pub fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_first_sample_and_moves_an_eighth_of_the_way() {
        let avg = Ewma::default();
        assert_eq!(avg.get(), None);
        avg.record(Duration::from_micros(80));
        assert_eq!(avg.get(), Some(Duration::from_micros(80)));
        avg.record(Duration::from_micros(160));
        assert_eq!(avg.get(), Some(Duration::from_micros(90)));
        avg.record(Duration::ZERO);
        assert!(avg.get().is_some_and(|d| d < Duration::from_micros(90)));
    }
}
