//! The CPU's time-stamp counter: a cycle count the pipeline's clock reads in ~8 ns where the
//! vDSO's `clock_gettime` takes ~20 ns here. `crate::stats::clock` decides whether it may be trusted
//! and scales it to nanoseconds; this file only reads it and asks the CPU about it.

/// Whether this build can read a time-stamp counter at all.
pub(crate) const AVAILABLE: bool = cfg!(all(target_arch = "x86_64", not(miri)));

/// The counter's current value (0 where [`AVAILABLE`] is false).
#[inline]
pub(crate) fn read() -> u64 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // SAFETY: every x86-64 CPU has `rdtsc`; it reads a register and touches no memory.
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        0
    }
}

/// Whether the CPU says its counter ticks at one constant rate in every power state, and does
/// not stop in deep sleep (CPUID leaf 0x8000_0007, EDX bit 8: "invariant TSC").
pub(crate) fn invariant() -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::__cpuid;
        // Leaf 0x8000_0000 says which extended leaves exist.
        if __cpuid(0x8000_0000).eax < 0x8000_0007 {
            return false;
        }
        __cpuid(0x8000_0007).edx & (1 << 8) != 0
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_moves_forward_on_this_thread() {
        if !AVAILABLE {
            println!("skipped: no time-stamp counter on this target");
            return;
        }
        let a = read();
        std::thread::sleep(std::time::Duration::from_millis(1));
        let b = read();
        // A millisecond is at least a million ticks on any counter of 1 GHz or more, and more
        // than 1,000 on any counter at all.
        assert!(b > a + 1_000, "rdtsc went from {a} to {b} across a 1 ms sleep");
    }
}
