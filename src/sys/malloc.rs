//! glibc's `mallopt`: the one call behind [`crate::runtime::retain_freed_memory`].

/// Which of glibc's thresholds to set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Threshold {
    /// `M_MMAP_THRESHOLD`: blocks at least this large get their own mapping.
    Mmap,
    /// `M_TRIM_THRESHOLD`: free memory above this at a heap's top goes back to the kernel.
    Trim,
}

/// Whether this build links glibc's allocator (whose `mallopt` this module calls).
pub(crate) const GLIBC: bool = cfg!(all(target_os = "linux", target_env = "gnu", not(miri)));

/// Sets one threshold; false where glibc refuses the value or this is not a glibc build.
pub(crate) fn set(threshold: Threshold, bytes: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
    {
        let param = match threshold {
            Threshold::Mmap => libc::M_MMAP_THRESHOLD,
            Threshold::Trim => libc::M_TRIM_THRESHOLD,
        };
        let Ok(value) = libc::c_int::try_from(bytes) else { return false };
        // SAFETY: mallopt takes two integers and touches only the allocator's own parameters,
        // which it guards with its own lock; it returns 1 on success and 0 on a refused value.
        unsafe { libc::mallopt(param, value) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(miri))))]
    {
        let _ = (threshold, bytes);
        false
    }
}
