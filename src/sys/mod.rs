//! Every raw libc call the crate makes outside the io_uring crate: eventfds, fd ownership,
//! the io_uring sysctl, the CPU's time-stamp counter (`tsc`), glibc's allocator thresholds
//! (`malloc`). Callers above this module see safe functions only.

pub(crate) mod malloc;
pub(crate) mod tsc;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Creates a close-on-exec eventfd (blocking, so a read through the ring waits for a write instead of failing with EAGAIN): the doorbell a non-shard thread rings, and
/// a shard's fallback doorbell where `IORING_OP_MSG_RING` is missing.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a negative return is reported as an error below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned_fd(fd))
}

/// Adds one to an eventfd's counter, waking a ring that has a read pending on it.
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local; a full counter (EAGAIN) already means "woken",
    // and a closed fd (EBADF) means the target is gone: both are fine to ignore.
    let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Waits until `fd` (an eventfd) is readable or `timeout` passes, then resets its counter.
/// Returns whether it was written. An interrupted wait (a signal) returns `false` like a timeout:
/// the caller's loop looks at its queues again either way.
pub(crate) fn eventfd_wait(fd: RawFd, timeout: Option<std::time::Duration>) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one live pollfd, a timespec that outlives the call (or null: wait forever), no
    // signal mask.
    let n = unsafe { libc::ppoll(&mut pfd, 1, tsp, std::ptr::null()) };
    if n <= 0 || pfd.revents & libc::POLLIN == 0 {
        return false;
    }
    let mut counter: u64 = 0;
    // SAFETY: reads 8 bytes into a live local. Only this shard reads its eventfd and it is
    // readable (the counter is non-zero), so the blocking read returns at once.
    let _ = unsafe { libc::read(fd, (&mut counter as *mut u64).cast(), 8) };
    true
}

/// The CPU the calling thread is running on, as the kernel last saw it (`None` if it will not
/// say). glibc answers from the thread's rseq area, without a syscall.
pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// Takes ownership of a descriptor the kernel has just returned to us.
pub(crate) fn owned_fd(fd: RawFd) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: every caller passes a descriptor freshly returned by a successful syscall (eventfd,
    // or an io_uring openat completion), which nothing else owns or will close.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// What `/proc/sys/kernel/io_uring_disabled` says (absent on kernels older than 6.6: 0).
pub(crate) fn io_uring_disabled_sysctl() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// The size of an open file, by `fstat`. Used instead of a ring `statx` where the size is only a
/// buffer hint: the kernel always sends `statx` to an io-wq worker (~4 µs here), while `fstat` on
/// an open descriptor is a sub-microsecond syscall that never blocks on I/O.
pub(crate) fn fstat_size(fd: RawFd) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable stat buffer of the right size; the kernel fills it on success.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.st_size as u64)
}

/// Sets the calling thread's timer slack to 1 ns. The default (50 µs) lets the kernel delay the
/// wake-up of a timed wait by up to that much, so every `sleep` on a parked shard overshot by
/// ~50 µs (a 1 ms sleep took 1.05 ms). Returns false if the kernel refused.
pub(crate) fn tight_timer_slack() -> bool {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) == 0 }
}
