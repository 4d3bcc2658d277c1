//! The clock that stamps items and times stage calls: nanoseconds since a process-wide origin.
//!
//! A pipeline reads the clock two or three times per item (the source's stamp, the start and end
//! of a timed call), so its cost shows: `clock_gettime` through the vDSO takes ~20 ns here, a
//! fifth of a no-work pipeline's time. Where the kernel itself keeps time with the CPU's
//! time-stamp counter, the clock reads that counter instead (~8 ns) and scales it by a rate
//! measured once, against `Instant`, the first time the clock is read.
//!
//! The counter is used only when all of these hold, else the clock is `Instant` since the origin:
//! - the CPU reports an invariant counter (one rate in every power state);
//! - the kernel's current clocksource is `tsc`: the kernel checked that the CPUs' counters agree
//!   (it switches away from `tsc` when they drift apart), so stamps taken on different shards
//!   compare;
//! - the calibration got two clean readings (neither pair of readings was cut by preemption);
//! - `SHARDPIPE_CLOCK` is unset or `tsc` (`SHARDPIPE_CLOCK=monotonic` forces `Instant`).
//!
//! Both clocks count from the same origin, in nanoseconds; values from the two are never mixed
//! (the choice is made once per process). The counter's rate is measured over ~1 ms between two
//! readings taken back to back with `Instant` (each kept only if nothing cut into it), so it is
//! right to ~10⁻⁴, and to 10⁻³ at worst: a 1 ms latency reads within 0.1–1 µs of `Instant`'s.

#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::sys::tsc;

/// How long the counter's rate is measured against `Instant` (once per process).
const CALIBRATION: Duration = Duration::from_millis(1);

/// A reading pair whose two counter reads are further apart than this was preempted or
/// interrupted: its `Instant` is not known to lie in between closely enough. An undisturbed pair
/// is ~60 ticks wide here (one `Instant::now()`); 1,000 ticks is 0.4 µs at 2.6 GHz, so the
/// rate measured over 1 ms is right to 10⁻³ at worst.
const MAX_PAIR_TICKS: u64 = 1_000;

/// Which clock this process uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockSource {
    /// The CPU's time-stamp counter, at the rate measured at start.
    Tsc {
        /// Counter ticks per microsecond (the counter's frequency in MHz).
        ticks_per_us: f64,
    },
    /// `std::time::Instant` (`clock_gettime(CLOCK_MONOTONIC)`).
    Monotonic {
        /// Why the time-stamp counter is not used.
        why: &'static str,
    },
}

impl std::fmt::Display for ClockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockSource::Tsc { ticks_per_us } => write!(f, "tsc at {ticks_per_us:.1} MHz"),
            ClockSource::Monotonic { why } => write!(f, "monotonic ({why})"),
        }
    }
}

/// Counter ticks to nanoseconds: `ns = (ticks - origin) · mult / 2³²`.
#[derive(Debug, Clone, Copy)]
struct TscScale {
    origin: u64,
    mult: u64,
}

impl TscScale {
    /// The scale for `ticks` counted over `ns`, counting from `origin`; `None` if either is 0 or
    /// the rate is beyond any real counter (under 1 MHz).
    fn from_rate(origin: u64, ticks: u64, ns: u64) -> Option<Self> {
        if ticks == 0 || ns == 0 || ns / ticks >= 1_000 {
            return None;
        }
        let mult = u64::try_from((u128::from(ns) << 32) / u128::from(ticks)).ok()?;
        Some(TscScale { origin, mult })
    }

    #[inline]
    fn ns(self, ticks: u64) -> u64 {
        // A counter read on another CPU just before the origin reads as 0, not as a wrap.
        let delta = ticks.saturating_sub(self.origin);
        ((u128::from(delta) * u128::from(self.mult)) >> 32) as u64
    }

    fn ticks_per_us(self) -> f64 {
        1_000.0 * (1u64 << 32) as f64 / self.mult as f64
    }
}

#[derive(Debug)]
enum Clock {
    Tsc(TscScale),
    Monotonic { origin: Instant, why: &'static str },
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

fn clock() -> &'static Clock {
    CLOCK.get_or_init(Clock::choose)
}

/// Nanoseconds since the process-wide origin (the first reading of this clock in the process).
#[inline]
pub(crate) fn now_ns() -> u64 {
    match clock() {
        Clock::Tsc(scale) => scale.ns(tsc::read()),
        Clock::Monotonic { origin, .. } => u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
    }
}

/// Which clock stamps and times this process's pipelines, and why (read it to report it; the
/// first call makes the choice, measuring the counter's rate for ~1 ms).
pub fn clock_source() -> ClockSource {
    match clock() {
        Clock::Tsc(scale) => ClockSource::Tsc { ticks_per_us: scale.ticks_per_us() },
        Clock::Monotonic { why, .. } => ClockSource::Monotonic { why },
    }
}

impl Clock {
    fn choose() -> Clock {
        let origin = Instant::now();
        let monotonic = |why| Clock::Monotonic { origin, why };
        match std::env::var("SHARDPIPE_CLOCK").as_deref() {
            Ok("monotonic") => return monotonic("SHARDPIPE_CLOCK=monotonic"),
            Ok("tsc") | Err(_) => {}
            Ok(other) => eprintln!(
                "shardpipe: SHARDPIPE_CLOCK={other:?} is not a clock; use `tsc` or `monotonic` \
                 (choosing by itself)"
            ),
        }
        if !tsc::AVAILABLE {
            return monotonic("no time-stamp counter on this target");
        }
        if !tsc::invariant() {
            return monotonic("the CPU does not report an invariant time-stamp counter");
        }
        if kernel_clocksource().as_deref() != Some("tsc") {
            return monotonic("the kernel does not keep time with the time-stamp counter");
        }
        match calibrate() {
            Some(scale) => Clock::Tsc(scale),
            None => monotonic("the time-stamp counter's rate could not be measured cleanly"),
        }
    }
}

/// The kernel's current clocksource (Linux), e.g. `tsc` or `kvm-clock`.
fn kernel_clocksource() -> Option<String> {
    let s = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource").ok()?;
    Some(s.trim().to_owned())
}

/// An `Instant` and the counter at that moment: the middle of the tightest of a few
/// counter–Instant–counter readings, or `None` if every one was cut by preemption.
fn reading_pair() -> Option<(u64, Instant)> {
    let mut best: Option<(u64, u64, Instant)> = None;
    for _ in 0..8 {
        let before = tsc::read();
        let at = Instant::now();
        let after = tsc::read();
        let width = after.wrapping_sub(before);
        if after >= before && width <= MAX_PAIR_TICKS && best.is_none_or(|(w, ..)| width < w) {
            best = Some((width, before + width / 2, at));
        }
    }
    best.map(|(_, ticks, at)| (ticks, at))
}

/// Measures the counter's rate against `Instant` over [`CALIBRATION`] (twice if the first try
/// was cut by preemption).
fn calibrate() -> Option<TscScale> {
    for _ in 0..2 {
        let Some((t0, i0)) = reading_pair() else { continue };
        while i0.elapsed() < CALIBRATION {
            std::hint::spin_loop();
        }
        let Some((t1, i1)) = reading_pair() else { continue };
        let ns = u64::try_from(i1.duration_since(i0).as_nanos()).ok()?;
        // The origin is the first pair's instant: `now_ns` counts from the clock's first reading.
        if let Some(scale) = TscScale::from_rate(t0, t1.checked_sub(t0)?, ns) {
            return Some(scale);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_turns_ticks_into_nanoseconds() {
        // A 2.6 GHz counter: 2.6 ticks per ns.
        let s = TscScale::from_rate(1_000, 2_600_000, 1_000_000).unwrap();
        assert_eq!(s.ns(1_000), 0);
        // One second of ticks, within a nanosecond of a second (fixed-point rounding).
        let one_second = s.ns(1_000 + 2_600_000_000);
        assert!(one_second.abs_diff(1_000_000_000) <= 1, "{one_second}");
        assert!((s.ticks_per_us() - 2_600.0).abs() < 1e-3, "{}", s.ticks_per_us());
        // A reading from another CPU a little before the origin is 0, not a wrapped huge value.
        assert_eq!(s.ns(999), 0);
        // A day of ticks does not overflow.
        let day = s.ns(1_000 + 2_600_000_000 * 86_400);
        assert!(day.abs_diff(86_400_000_000_000) <= 86_400, "{day}");
    }

    #[test]
    fn impossible_rates_are_refused() {
        assert!(TscScale::from_rate(0, 0, 1_000).is_none());
        assert!(TscScale::from_rate(0, 1_000, 0).is_none());
        // 1,000 ns per tick is a 1 MHz counter: no invariant TSC runs that slowly.
        assert!(TscScale::from_rate(0, 1_000, 1_000_000).is_none());
        assert!(TscScale::from_rate(0, 1_001, 1_000_000).is_some());
    }

    /// A clock reading between two `Instant`s (the tightest of a few tries).
    fn bracketed() -> (Instant, u64, Instant) {
        let mut best: Option<(Instant, u64, Instant)> = None;
        for _ in 0..100 {
            let (a, c, b) = (Instant::now(), now_ns(), Instant::now());
            if best.is_none_or(|(ba, _, bb)| b - a < bb - ba) {
                best = Some((a, c, b));
            }
        }
        best.expect("100 tries")
    }

    #[test]
    fn the_clock_keeps_pace_with_instant() {
        // Whichever clock this machine gets, it must agree with `Instant` over a sleep. Each
        // reading is bracketed by two `Instant`s, so a preemption widens the bounds instead of
        // failing the test; what is left to catch is a wrong rate.
        let source = clock_source();
        let (a0, c0, b0) = bracketed();
        std::thread::sleep(Duration::from_millis(20));
        let (a1, c1, b1) = bracketed();
        let clock = c1 - c0;
        let (shortest, longest) = (a1.duration_since(b0).as_nanos() as u64, b1.duration_since(a0).as_nanos() as u64);
        // Calibration is good to ~10⁻⁴; 1 % of slack is far from any rate error a real bug makes
        // (a clock in ticks, or scaled twice, is off by a factor of ~2.6 or more).
        let slack = longest / 100;
        assert!(
            clock + slack >= shortest && clock <= longest + slack,
            "{source}: the clock measured {clock} ns between Instants {shortest}..{longest} ns apart"
        );
        println!("clock: {source}");
    }

    #[test]
    fn the_clock_never_runs_backwards_on_one_thread() {
        let mut last = now_ns();
        for _ in 0..100_000 {
            let now = now_ns();
            assert!(now >= last, "{now} after {last}");
            last = now;
        }
    }
}
