//! Latency and duration statistics: HdrHistogram recorders and the summaries reports print.
//!
//! Recorders live on one thread each (a shard, the consumer), so recording takes no atomics;
//! they are merged with [`Recorder::merge`] when a report is read.

#![forbid(unsafe_code)]

use hdrhistogram::Histogram;

mod clock;
pub(crate) use clock::now_ns;
pub use clock::{ClockSource, clock_source};

/// Nanosecond durations from 1 ns to one hour at 3 significant digits.
///
/// The histogram (~270 KB of counters) is allocated at the first record: a pipeline has a
/// recorder per stage per shard, most stages never record, and allocating them all up front cost
/// ~100 µs each at pipeline start.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    hist: Option<Histogram<u64>>,
}

/// One hour in nanoseconds: longer values are clamped (and still counted).
const MAX_NS: u64 = 3_600_000_000_000;

fn empty_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("constant bounds are valid")
}

impl Recorder {
    /// An empty recorder (allocates nothing yet).
    pub fn new() -> Self {
        Self { hist: None }
    }

    /// Records one duration in nanoseconds (clamped to 1 ns ..= 1 h).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.get_or_insert_with(empty_histogram).saturating_record(ns.clamp(1, MAX_NS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Recorder) {
        let Some(theirs) = &other.hist else { return };
        match &mut self.hist {
            Some(mine) => mine.add(theirs).expect("recorders share their bounds"),
            None => self.hist = Some(theirs.clone()),
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }

    /// The underlying histogram (for `.hgrm` output and custom quantiles); `None` until the
    /// first record.
    pub fn histogram(&self) -> Option<&Histogram<u64>> {
        self.hist.as_ref()
    }

    /// The quantiles reports print.
    pub fn summary(&self) -> Summary {
        let Some(h) = self.hist.as_ref().filter(|h| !h.is_empty()) else { return Summary::default() };
        let q = |p: f64| h.value_at_quantile(p);
        Summary {
            count: h.len(),
            mean: h.mean(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max(),
        }
    }
}

/// Quantiles of a set of nanosecond durations (all 0 when nothing was recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Mean, ns.
    pub mean: f64,
    /// Median, ns.
    pub p50: u64,
    /// 90th percentile, ns.
    pub p90: u64,
    /// 99th percentile, ns.
    pub p99: u64,
    /// 99.9th percentile, ns.
    pub p999: u64,
    /// 99.99th percentile, ns.
    pub p9999: u64,
    /// Largest value, ns.
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_every_merged_recorder() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        (1..=50).for_each(|v| a.record(v * 1000));
        (51..=100).for_each(|v| b.record(v * 1000));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 100);
        assert!((49_900..=50_100).contains(&s.p50), "p50 {}", s.p50);
        assert!((99_000..=100_100).contains(&s.max), "max {}", s.max);
    }

    #[test]
    fn an_empty_recorder_summarises_to_zeros() {
        assert_eq!(Recorder::new().summary(), Summary::default());
    }
}
