//! The back-end without io_uring: operations are plain syscalls run when they start (see
//! `op/`), and a parked shard waits in `ppoll` on its eventfd.
//!
//! The wake protocol is the same as with a ring (a peer that publishes checks the sleeping flag
//! and then writes the eventfd); the eventfd's counter remembers a wake written before the
//! shard reached `ppoll`, so none is lost between the last inbox check and the wait.

use std::os::fd::RawFd;
use std::time::Duration;

use super::DriverStats;

/// A shard's reactor without a ring.
#[derive(Debug)]
pub(crate) struct Fallback {
    eventfd: RawFd,
    pub(crate) stats: DriverStats,
}

impl Fallback {
    pub(crate) fn new(eventfd: RawFd) -> Self {
        Self { eventfd, stats: DriverStats::default() }
    }

    /// Waits until the eventfd is written or `timeout` passes; resets the counter. Returns 1 when
    /// woken, 0 on timeout.
    pub(crate) fn park(&mut self, timeout: Option<Duration>) -> usize {
        self.stats.parks += 1;
        usize::from(crate::sys::eventfd_wait(self.eventfd, timeout))
    }

    /// Wakes a sleeping peer through its eventfd.
    pub(crate) fn wake_peer(&mut self, eventfd: RawFd) {
        self.stats.eventfd_wakes += 1;
        crate::sys::eventfd_signal(eventfd);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    use super::*;

    #[test]
    fn park_times_out_and_a_wake_written_before_it_is_not_lost() {
        let fd = crate::sys::eventfd().unwrap();
        let mut f = Fallback::new(fd.as_raw_fd());
        let t = Instant::now();
        assert_eq!(f.park(Some(Duration::from_millis(5))), 0, "nobody woke it");
        assert!(t.elapsed() >= Duration::from_millis(5));
        // A wake that lands before the park (between the shard's last look and its wait).
        let mut peer = Fallback::new(-1);
        peer.wake_peer(fd.as_raw_fd());
        assert_eq!(f.park(None), 1, "the counter kept the wake");
        assert_eq!(f.park(Some(Duration::from_millis(1))), 0, "and the park reset it");
        assert_eq!((f.stats.parks, peer.stats.eventfd_wakes), (3, 1));
    }
}
