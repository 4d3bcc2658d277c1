//! The per-shard reactor: io_uring where the kernel allows it, plain syscalls where it does not.
//!
//! [`Driver`] is what a shard's loop and the operation futures talk to. Its two back-ends:
//!
//! - [`Uring`] (`uring.rs`): one ring per shard; operations are submitted in batches and complete
//!   asynchronously; a parked shard blocks in `io_uring_enter` and is woken by `MSG_RING` or its
//!   eventfd.
//! - [`Fallback`] (`fallback.rs`): for containers whose seccomp profile blocks io_uring (or
//!   `SHARDPIPE_DRIVER=fallback`). Each operation is the equivalent plain syscall, run at once on
//!   the shard thread (file reads from the page cache do not block for long; a cold disk read
//!   stalls that shard's other tasks, which io_uring avoids); a parked shard waits in `ppoll` on
//!   its eventfd, which peers and other threads write to wake it. Timers are the runtime's own
//!   in both.
//!
//! Which one runs is chosen per runtime by [`DriverChoice`]: `auto` (the default) uses io_uring
//! and falls back when ring setup fails, saying why once per process.

pub(crate) mod fallback;
pub(crate) mod op;
pub mod setup;
pub(crate) mod uring;

use std::io;
use std::os::fd::RawFd;
use std::sync::Once;
use std::task::{Context, Poll};
use std::time::Duration;

use io_uring::squeue;

pub(crate) use fallback::Fallback;
pub use setup::{RingMode, UringUnavailable};
pub(crate) use uring::Uring;

/// What the kernel reported for one operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub(crate) result: i32,
}

impl Completion {
    /// The result as `io::Result`: negative values are `-errno`.
    pub(crate) fn into_io(self) -> io::Result<u32> {
        if self.result < 0 { Err(io::Error::from_raw_os_error(-self.result)) } else { Ok(self.result as u32) }
    }
}

/// Counters a shard reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct DriverStats {
    /// `io_uring_enter` calls made to submit or reap without waiting.
    pub enters: u64,
    /// Times the shard blocked in the ring.
    pub parks: u64,
    /// Wake messages this shard sent to sleeping peers through `MSG_RING`.
    pub msg_ring_wakes: u64,
    /// Wakes sent through an eventfd write instead.
    pub eventfd_wakes: u64,
}

/// Which back-end a runtime's shards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring, or the fallback when io_uring cannot be set up (logged once, with the cause).
    #[default]
    Auto,
    /// io_uring only: building the runtime fails when it is unavailable.
    Uring,
    /// Plain syscalls and eventfd parking, even where io_uring works.
    Fallback,
}

impl DriverChoice {
    /// The environment variable that sets the default choice.
    pub const ENV: &'static str = "SHARDPIPE_DRIVER";

    /// `SHARDPIPE_DRIVER`: `auto` (or unset), `uring`, `fallback`; anything else is an error naming
    /// the accepted values.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(Self::ENV) {
            Err(_) => Ok(Self::Auto),
            Ok(v) => v.parse(),
        }
    }
}

impl std::str::FromStr for DriverChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "auto" => Ok(Self::Auto),
            "uring" | "io_uring" => Ok(Self::Uring),
            "fallback" => Ok(Self::Fallback),
            other => Err(format!(
                "{}={other:?} is not a driver: use auto (io_uring, else the fallback), uring (io_uring only) or fallback",
                Self::ENV
            )),
        }
    }
}

/// One shard's reactor.
#[derive(Debug)]
// One per shard, never moved after start: boxing the ring would add a pointer chase to every op.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Driver {
    Uring(Uring),
    Fallback(Fallback),
}

impl Driver {
    /// Creates the shard's reactor on the calling thread (the ring's single issuer). `eventfd` is
    /// the shard's doorbell for threads without a ring; it must outlive the driver.
    pub(crate) fn new(
        choice: DriverChoice,
        entries: u32,
        eventfd: RawFd,
        allow_msg_ring: bool,
    ) -> Result<Self, UringUnavailable> {
        match choice {
            DriverChoice::Fallback => Ok(Driver::Fallback(Fallback::new(eventfd))),
            DriverChoice::Uring => Uring::new(entries, eventfd, allow_msg_ring).map(Driver::Uring),
            DriverChoice::Auto => match Uring::new(entries, eventfd, allow_msg_ring) {
                Ok(u) => Ok(Driver::Uring(u)),
                Err(e) => {
                    static SAID: Once = Once::new();
                    SAID.call_once(|| {
                        eprintln!(
                            "shardpipe: {e}\nshardpipe: using the fallback driver (plain syscalls, eventfd parking); \
                             set {}=uring to refuse to run without io_uring",
                            DriverChoice::ENV
                        );
                    });
                    Ok(Driver::Fallback(Fallback::new(eventfd)))
                }
            },
        }
    }

    /// The ring's setup flags, or [`RingMode::Fallback`].
    pub(crate) fn mode(&self) -> RingMode {
        match self {
            Driver::Uring(u) => u.mode(),
            Driver::Fallback(_) => RingMode::Fallback,
        }
    }

    /// Whether peers are woken with `IORING_OP_MSG_RING` (else eventfd writes).
    pub(crate) fn uses_msg_ring(&self) -> bool {
        matches!(self, Driver::Uring(u) if u.uses_msg_ring())
    }

    /// The ring's descriptor for peers' `MSG_RING` wakes; -1 without a ring.
    pub(crate) fn ring_fd(&self) -> RawFd {
        match self {
            Driver::Uring(u) => u.ring_fd(),
            Driver::Fallback(_) => -1,
        }
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> DriverStats {
        match self {
            Driver::Uring(u) => u.stats,
            Driver::Fallback(f) => f.stats,
        }
    }

    /// Starts an operation: `entry` on a ring, else `sync` at once (a plain syscall returning a
    /// result in the kernel's convention: the value, or `-errno`).
    ///
    /// # Safety
    /// As for [`Uring::submit`]: the memory `entry` points to must be owned by data that the
    /// caller keeps alive until [`Driver::poll_op`] returns `Ready`, or hands to
    /// [`Driver::abandon`].
    pub(crate) unsafe fn start(&mut self, entry: squeue::Entry, sync: impl FnOnce() -> i32) -> Started {
        match self {
            // SAFETY: delegated to the caller.
            Driver::Uring(u) => Started::Pending(unsafe { u.submit(entry) }),
            Driver::Fallback(_) => Started::Done(Completion { result: sync() }),
        }
    }

    /// Polls an operation started on the ring.
    pub(crate) fn poll_op(&mut self, idx: usize, cx: &mut Context<'_>) -> Poll<Completion> {
        match self {
            Driver::Uring(u) => u.poll_op(idx, cx),
            Driver::Fallback(_) => unreachable!("the fallback completes operations when they start"),
        }
    }

    /// The future of a ring operation was dropped (see [`Uring::abandon`]).
    pub(crate) fn abandon(&mut self, idx: usize, data: Box<dyn std::any::Any>, on_orphan: Option<fn(i32)>) {
        if let Driver::Uring(u) = self {
            u.abandon(idx, data, on_orphan);
        }
    }

    /// True when the kernel has something for us, or we have something for it.
    pub(crate) fn has_work(&mut self) -> bool {
        match self {
            Driver::Uring(u) => u.has_work(),
            Driver::Fallback(_) => false,
        }
    }

    /// Non-blocking: submit queued entries and reap whatever completed. Returns completions seen.
    pub(crate) fn turn(&mut self) -> usize {
        match self {
            Driver::Uring(u) => u.turn(),
            Driver::Fallback(_) => 0,
        }
    }

    /// Blocks until woken (a completion, a wake, the eventfd) or `timeout` passes.
    pub(crate) fn park(&mut self, timeout: Option<Duration>) -> usize {
        match self {
            Driver::Uring(u) => u.park(timeout),
            Driver::Fallback(f) => f.park(timeout),
        }
    }

    /// Wakes a sleeping peer shard: `MSG_RING` into its ring when both have one, else its eventfd.
    pub(crate) fn wake_peer(&mut self, ring_fd: RawFd, eventfd: RawFd) {
        match self {
            Driver::Uring(u) => u.wake_peer(ring_fd, eventfd),
            Driver::Fallback(f) => f.wake_peer(eventfd),
        }
    }
}

/// How an operation started.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Started {
    /// In flight on the ring, in this slot.
    Pending(usize),
    /// Already done (the fallback).
    Done(Completion),
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn negative_results_are_errno() {
        assert_eq!(Completion { result: 12 }.into_io().unwrap(), 12);
        let e = Completion { result: -libc::ENOENT }.into_io().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_driver_variable_takes_three_values_and_names_them_when_wrong() {
        assert_eq!("".parse::<DriverChoice>(), Ok(DriverChoice::Auto));
        assert_eq!("uring".parse::<DriverChoice>(), Ok(DriverChoice::Uring));
        assert_eq!("fallback".parse::<DriverChoice>(), Ok(DriverChoice::Fallback));
        let e = "epoll".parse::<DriverChoice>().unwrap_err();
        assert!(e.contains("SHARDPIPE_DRIVER=\"epoll\"") && e.contains("fallback"), "{e}");
    }
}
