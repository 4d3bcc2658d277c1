//! The sleep/wake handshake shared by parking shards and waiting channel ends.
//!
//! A waiter that is about to block *arms* the doorbell, then re-checks its condition; a
//! notifier that has just published *takes* the doorbell and delivers a wake only if it finds it
//! armed. Both sides put a `SeqCst` fence between their own write and their read of the other's
//! (a Dekker pair), so at least one of them sees the other: either the notifier sees the armed
//! flag and wakes, or the waiter's re-check sees the published data and does not block. The full
//! argument is in `docs/architecture.md` ("No lost wake-up").
//!
//! A busy waiter never arms, so a notifier pays one fence and one relaxed load: no syscall.

use crate::sync::{AtomicBool, Ordering, fence};

/// One armed/disarmed flag with the fence discipline above.
#[derive(Debug)]
pub(crate) struct Doorbell {
    armed: AtomicBool,
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self { armed: AtomicBool::new(false) }
    }

    /// Waiter: announce the intent to sleep. The caller must re-check its wait condition after
    /// this returns and before it blocks; the fence orders the flag before that re-check.
    #[inline]
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Waiter: the re-check found work, or the waiter woke; a later wake is no longer needed.
    #[inline]
    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }

    /// Notifier: call after publishing. Returns true when the waiter announced sleep and this
    /// caller won the right to wake it (so one publication sends at most one wake).
    #[inline]
    pub(crate) fn take(&self) -> bool {
        fence(Ordering::SeqCst);
        self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::Relaxed)
    }

    /// Whether the waiter has announced sleep. A hint: it may change right after the read.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn take_fires_once_per_arm() {
        let d = Doorbell::new();
        assert!(!d.take(), "an unarmed doorbell must not ask for a wake");
        d.arm();
        assert!(d.is_armed());
        assert!(d.take());
        assert!(!d.take(), "a second notifier must not send a second wake");
        d.arm();
        d.disarm();
        assert!(!d.take(), "a waiter that disarmed needs no wake");
    }
}
