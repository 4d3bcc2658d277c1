//! A stage's `concurrency` in a plan: a fixed count, or a count per CPU (`"cpus"`, `"cpus*K"`),
//! so that one plan keeps a machine of any size busy. The per-CPU form counts the CPUs the
//! process may use (its affinity mask, as `taskset` sets it) when the plan is loaded.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// How many tasks a stage keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// This many.
    Fixed(u64),
    /// This many per CPU the process may use.
    PerCpu(u64),
}

impl Concurrency {
    /// The count where the process may use `cpus` CPUs.
    pub fn on(self, cpus: usize) -> u64 {
        match self {
            Self::Fixed(n) => n,
            Self::PerCpu(k) => k.saturating_mul(cpus as u64),
        }
    }

    /// The count on this machine: the per-CPU form counts the CPUs this process may use.
    pub fn here(self) -> u64 {
        self.on(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// `"cpus"` or `"cpus*K"` (spaces allowed around `*`); a quoted count is a count.
fn parse(text: &str) -> Option<Concurrency> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(Concurrency::Fixed(n));
    }
    let rest = t.strip_prefix("cpus")?.trim_start();
    if rest.is_empty() {
        return Some(Concurrency::PerCpu(1));
    }
    rest.strip_prefix('*')?.trim().parse::<u64>().ok().map(Concurrency::PerCpu)
}

const EXPECTED: &str = "a count (e.g. 8), \"cpus\" (one per CPU) or \"cpus*K\" (K per CPU, e.g. \"cpus*2\")";

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Count;
        impl Visitor<'_> for Count {
            type Value = Concurrency;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Concurrency, E> {
                Ok(Concurrency::Fixed(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Concurrency, E> {
                u64::try_from(n)
                    .map(Concurrency::Fixed)
                    .map_err(|_| E::custom(format!("{n} is negative; expected {EXPECTED}")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Concurrency, E> {
                parse(s).ok_or_else(|| E::custom(format!("\"{s}\" is not {EXPECTED}")))
            }
        }
        d.deserialize_any(Count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_per_cpu_forms_parse() {
        assert_eq!(parse("8"), Some(Concurrency::Fixed(8)));
        assert_eq!(parse("cpus"), Some(Concurrency::PerCpu(1)));
        assert_eq!(parse(" cpus * 2 "), Some(Concurrency::PerCpu(2)));
        assert_eq!(parse("cpus*3"), Some(Concurrency::PerCpu(3)));
        for bad in ["", "cpu", "cpus*", "cpus*x", "cpus/2", "2*cpus", "cpus*-1", "many"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_per_cpu_form_scales_with_the_cpus() {
        assert_eq!(Concurrency::PerCpu(2).on(2), 4);
        assert_eq!(Concurrency::PerCpu(2).on(16), 32);
        assert_eq!(Concurrency::Fixed(4).on(16), 4);
        assert_eq!(Concurrency::PerCpu(u64::MAX).on(16), u64::MAX, "saturates rather than wraps");
    }
}
