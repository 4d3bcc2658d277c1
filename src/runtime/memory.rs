//! A process-wide allocator setting for pipelines that free large buffers on several threads.
//!
//! glibc's malloc gives a freed block back to the kernel when it has its own mapping (blocks
//! from 128 KiB up, until its dynamic threshold has grown past them) or when it leaves enough
//! free memory at the top of a heap (twice that threshold). The next block of that size faults
//! its pages in again, and in a process with threads on other CPUs every unmapping also makes
//! the kernel flush those CPUs' TLBs. An image loader frees a decoded image (~360 KiB) and a
//! resized one (~150 KiB) per item on every shard, so it pays this per image; a single thread
//! running the same decode pays less (no other CPU to flush).
//!
//! [`retain_freed_memory`] fixes both thresholds high, so freed memory stays in the process for
//! the next block: the resident size stays at its peak instead of shrinking between batches.
#![forbid(unsafe_code)]

use crate::sys::malloc::{self, Threshold};

/// The mapping threshold [`retain_freed_memory`] sets: glibc's own ceiling for its dynamic
/// threshold on 64-bit systems (`DEFAULT_MMAP_THRESHOLD_MAX`); larger blocks still get a mapping.
pub const RETAINED_MMAP_THRESHOLD: usize = 32 << 20;

/// The trim threshold [`retain_freed_memory`] sets: more than a thread's heap can hold (64 MiB),
/// so a heap is never trimmed.
pub const RETAINED_TRIM_THRESHOLD: usize = 256 << 20;

/// What [`retain_freed_memory`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemorySetting {
    /// Both thresholds are set to [`RETAINED_MMAP_THRESHOLD`] and [`RETAINED_TRIM_THRESHOLD`].
    Retained,
    /// `GLIBC_TUNABLES` already sets malloc's parameters (it holds this text): the environment
    /// wins and nothing was changed.
    LeftToEnvironment(String),
}

/// Why [`retain_freed_memory`] changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemorySettingError {
    /// The process does not use glibc's allocator (musl, another OS, or a Rust global allocator
    /// in front of it, in which case that allocator's own settings apply).
    #[error(
        "the allocator thresholds are glibc's and this build does not use glibc's malloc; tune the allocator you use instead"
    )]
    NotGlibc,
    /// glibc refused a value (a glibc with other limits).
    #[error("glibc's mallopt refused {name} = {bytes} bytes; set it with GLIBC_TUNABLES instead")]
    Refused {
        /// `M_MMAP_THRESHOLD` or `M_TRIM_THRESHOLD`.
        name: &'static str,
        /// The value it refused.
        bytes: usize,
    },
}

/// Keeps freed memory in the process instead of returning it to the kernel (see the module
/// docs): call it once, early in `main`, in a program that decodes images or moves other large
/// buffers through a sharded pipeline. Process-wide and not undone.
///
/// Leaves everything as it is when `GLIBC_TUNABLES` already sets malloc's parameters.
pub fn retain_freed_memory() -> Result<MemorySetting, MemorySettingError> {
    let env = std::env::var("GLIBC_TUNABLES").ok();
    apply(env.as_deref(), malloc::GLIBC, malloc::set)
}

/// [`retain_freed_memory`] with its environment, platform and `mallopt` passed in (for tests).
fn apply(
    tunables: Option<&str>,
    glibc: bool,
    mut set: impl FnMut(Threshold, usize) -> bool,
) -> Result<MemorySetting, MemorySettingError> {
    if let Some(t) = tunables.filter(|t| t.contains("glibc.malloc.")) {
        return Ok(MemorySetting::LeftToEnvironment(t.to_owned()));
    }
    if !glibc {
        return Err(MemorySettingError::NotGlibc);
    }
    // The mapping threshold first: setting either one turns glibc's dynamic threshold off, and
    // with the trim threshold alone every block from 128 KiB up would get its own mapping.
    let steps = [
        (Threshold::Mmap, "M_MMAP_THRESHOLD", RETAINED_MMAP_THRESHOLD),
        (Threshold::Trim, "M_TRIM_THRESHOLD", RETAINED_TRIM_THRESHOLD),
    ];
    for (threshold, name, bytes) in steps {
        if !set(threshold, bytes) {
            return Err(MemorySettingError::Refused { name, bytes });
        }
    }
    Ok(MemorySetting::Retained)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malloc_tunables_in_the_environment_win() {
        let mut calls = 0;
        let got = apply(Some("glibc.malloc.trim_threshold=1"), true, |_, _| {
            calls += 1;
            true
        });
        assert_eq!(got, Ok(MemorySetting::LeftToEnvironment("glibc.malloc.trim_threshold=1".into())));
        assert_eq!(calls, 0, "nothing may be set over the environment's choice");
    }

    #[test]
    fn other_tunables_do_not_stop_it_and_the_mapping_threshold_goes_first() {
        let mut order = Vec::new();
        let got = apply(Some("glibc.pthread.rseq=0"), true, |t, b| {
            order.push((format!("{t:?}"), b));
            true
        });
        assert_eq!(got, Ok(MemorySetting::Retained));
        assert_eq!(order, [("Mmap".to_owned(), RETAINED_MMAP_THRESHOLD), ("Trim".to_owned(), RETAINED_TRIM_THRESHOLD)]);
    }

    #[test]
    fn a_refused_value_is_named_and_stops_the_rest() {
        let mut calls = 0;
        let got = apply(None, true, |_, _| {
            calls += 1;
            false
        });
        assert_eq!(got, Err(MemorySettingError::Refused { name: "M_MMAP_THRESHOLD", bytes: RETAINED_MMAP_THRESHOLD }));
        assert_eq!(calls, 1);
        assert!(got.unwrap_err().to_string().contains("GLIBC_TUNABLES"));
    }

    #[test]
    fn without_glibc_it_says_so() {
        assert_eq!(apply(None, false, |_, _| unreachable!()), Err(MemorySettingError::NotGlibc));
    }

    #[test]
    fn on_this_build_it_takes_effect() {
        let env_chose = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
        match (retain_freed_memory(), env_chose, malloc::GLIBC) {
            (Ok(MemorySetting::LeftToEnvironment(_)), true, _) => {}
            (Ok(MemorySetting::Retained), false, true) => {}
            (Err(MemorySettingError::NotGlibc), false, false) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}
