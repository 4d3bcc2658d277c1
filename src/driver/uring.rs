//! The io_uring back-end: one ring per shard, created and driven only by its shard's thread.
//!
//! # Data flow
//! An operation future ([`super::op::Op`]) owns its buffers and pushes a submission entry whose
//! `user_data` is the index of a slot in [`Uring::slots`]. Entries are submitted in one
//! `io_uring_enter` per loop turn ([`Uring::turn`]); completions are reaped into their slots and
//! the waiting task is woken onto the local run queue. A shard with nothing to do blocks in
//! [`Uring::park`], which waits for one completion: an I/O result, a timer's timeout, a
//! `MSG_RING` message from another shard, or the read that is kept pending on the shard's eventfd
//! (how threads without a ring wake it).
//!
//! # Safety
//! 1. **Kernel-owned memory.** Every pointer in a pushed entry points into heap memory owned by
//!    the slot's operation data. That data is freed only after the completion for that slot has
//!    been reaped: an operation future dropped early moves its data into the slot
//!    ([`Slot::Abandoned`]) and the driver frees it when the completion (or cancellation) arrives.
//! 2. **Drop waits.** `Uring::drop` cancels everything still in flight and reaps until nothing is,
//!    before the ring and any parked data go away.
//! 3. **Single issuer.** A `Uring` lives in a shard's thread-local context and is never sent to
//!    another thread (it holds `!Send` wakers and the ring), matching `IORING_SETUP_SINGLE_ISSUER`.

use std::any::Any;
use std::os::fd::RawFd;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use io_uring::{IoUring, opcode, squeue, types};

use super::setup::{self, RingMode, UringUnavailable};
use super::{Completion, DriverStats};

const TAG_SHIFT: u32 = 56;
const TAG_OP: u64 = 0;
const TAG_WAKE: u64 = 1 << TAG_SHIFT;
const TAG_EVENTFD: u64 = 2 << TAG_SHIFT;
const TAG_CANCEL: u64 = 3 << TAG_SHIFT;
const TAG_MSG_SEND: u64 = 4 << TAG_SHIFT;
const TAG_MASK: u64 = 0xff << TAG_SHIFT;

enum Slot {
    Free,
    Waiting(Option<Waker>),
    Done(Completion),
    /// The future was dropped while the kernel still owned its memory (invariant 1).
    /// With what to do with a successful result nobody will take (close an opened fd).
    Abandoned(#[allow(dead_code)] Box<dyn Any>, Option<fn(i32)>),
}

/// One shard's ring and the operations in flight on it.
pub(crate) struct Uring {
    ring: IoUring,
    mode: RingMode,
    msg_ring: bool,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Entries submitted whose completion has not been reaped (ops, abandoned ops, eventfd read).
    in_flight: usize,
    eventfd: RawFd,
    eventfd_buf: Box<u64>,
    eventfd_armed: bool,
    pub(crate) stats: DriverStats,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring")
            .field("mode", &self.mode)
            .field("msg_ring", &self.msg_ring)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Uring {
    /// Creates the ring on the calling thread. `eventfd` is the shard's doorbell for threads
    /// without a ring; it must outlive the driver.
    pub(crate) fn new(entries: u32, eventfd: RawFd, allow_msg_ring: bool) -> Result<Self, UringUnavailable> {
        setup::check_sysctl()?;
        let (ring, mode) = setup::build_ring(entries)?;
        let mut probe = io_uring::Probe::new();
        let msg_ring = ring.submitter().register_probe(&mut probe).is_ok()
            && probe.is_supported(opcode::MsgRingData::CODE)
            && ring.params().is_feature_skip_cqe_on_success()
            && allow_msg_ring;
        Ok(Self {
            ring,
            mode,
            msg_ring,
            slots: Vec::with_capacity(64),
            free: Vec::new(),
            in_flight: 0,
            eventfd,
            eventfd_buf: Box::new(0),
            eventfd_armed: false,
            stats: DriverStats::default(),
        })
    }

    pub(crate) fn mode(&self) -> RingMode {
        self.mode
    }

    /// Whether peers are woken with `IORING_OP_MSG_RING` (else eventfd writes).
    pub(crate) fn uses_msg_ring(&self) -> bool {
        self.msg_ring
    }

    pub(crate) fn ring_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.ring.as_raw_fd()
    }

    /// Pushes one entry, submitting first if the submission queue is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until its completion is reaped (module
    /// invariant 1).
    unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: delegated to the caller (pointers live until the completion is reaped).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            self.enter_now();
        }
    }

    /// Registers a new operation and queues its entry; returns the slot index.
    ///
    /// # Safety
    /// As for [`Uring::push`]: the memory `entry` points to must be owned by data that the
    /// caller keeps alive until [`Uring::poll_op`] returns `Ready`, or hands to
    /// [`Uring::abandon`].
    pub(crate) unsafe fn submit(&mut self, entry: squeue::Entry) -> usize {
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Slot::Waiting(None);
                i
            }
            None => {
                self.slots.push(Slot::Waiting(None));
                self.slots.len() - 1
            }
        };
        let entry = entry.user_data(TAG_OP | idx as u64);
        // SAFETY: delegated to the caller.
        unsafe { self.push(&entry) };
        self.in_flight += 1;
        idx
    }

    /// Polls a submitted operation; frees its slot once the completion is handed out.
    pub(crate) fn poll_op(&mut self, idx: usize, cx: &mut Context<'_>) -> Poll<Completion> {
        match &mut self.slots[idx] {
            Slot::Done(c) => {
                let c = *c;
                self.release(idx);
                Poll::Ready(c)
            }
            Slot::Waiting(w) => {
                match w {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Free | Slot::Abandoned(..) => unreachable!("op slot polled after release"),
        }
    }

    /// The future for `idx` was dropped: free now if done, else park `data` and cancel.
    /// `on_orphan` gets a result that completes nobody will take (an opened fd to close).
    pub(crate) fn abandon(&mut self, idx: usize, data: Box<dyn Any>, on_orphan: Option<fn(i32)>) {
        match self.slots[idx] {
            Slot::Done(c) => {
                self.release(idx);
                if let Some(f) = on_orphan {
                    f(c.result);
                }
            }
            _ => {
                self.slots[idx] = Slot::Abandoned(data, on_orphan);
                let cancel = opcode::AsyncCancel::new(TAG_OP | idx as u64).build().user_data(TAG_CANCEL);
                // SAFETY: a cancel entry holds no pointers.
                unsafe { self.push(&cancel) };
            }
        }
    }

    fn release(&mut self, idx: usize) {
        self.slots[idx] = Slot::Free;
        self.free.push(idx);
    }

    /// True when the kernel has something for us, or we have something for it.
    pub(crate) fn has_work(&mut self) -> bool {
        let mut sq = self.ring.submission();
        if !sq.is_empty() {
            return true;
        }
        sq.sync();
        if sq.taskrun() || sq.cq_overflow() {
            return true;
        }
        drop(sq);
        !self.ring.completion().is_empty()
    }

    /// Non-blocking: submit queued entries and reap whatever completed. Returns completions seen.
    pub(crate) fn turn(&mut self) -> usize {
        if self.has_work() {
            let needs_enter = !self.ring.submission().is_empty() || {
                let sq = self.ring.submission();
                sq.taskrun() || sq.cq_overflow()
            };
            if needs_enter {
                self.enter_now();
            }
        }
        self.reap()
    }

    fn enter_now(&mut self) {
        self.stats.enters += 1;
        match self.ring.submit() {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN | libc::EINTR)) => {
                // The completion queue is full or the kernel is busy: reap, then let the next
                // turn submit again.
                self.reap();
            }
            Err(e) => panic!("io_uring_enter failed unexpectedly: {e}"),
        }
    }

    fn arm_eventfd(&mut self) {
        if self.eventfd_armed {
            return;
        }
        let buf: *mut u64 = &mut *self.eventfd_buf;
        let entry = opcode::Read::new(types::Fd(self.eventfd), buf.cast(), 8).build().user_data(TAG_EVENTFD);
        // SAFETY: `eventfd_buf` is a heap box owned by the driver and freed only after `drop`
        // has reaped every completion, this read's included (invariant 2).
        unsafe { self.push(&entry) };
        self.eventfd_armed = true;
        self.in_flight += 1;
    }

    /// Blocks until at least one completion arrives or `timeout` passes, then reaps.
    pub(crate) fn park(&mut self, timeout: Option<Duration>) -> usize {
        self.arm_eventfd();
        self.stats.parks += 1;
        let res = match timeout {
            Some(d) => {
                let ts = types::Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        if let Err(e) = res {
            match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => {}
                _ => panic!("io_uring_enter (wait) failed unexpectedly: {e}"),
            }
        }
        self.reap()
    }

    /// Wakes a sleeping peer shard: `MSG_RING` into its ring, or its eventfd.
    pub(crate) fn wake_peer(&mut self, ring_fd: RawFd, eventfd: RawFd) {
        if self.msg_ring && ring_fd >= 0 {
            let entry = opcode::MsgRingData::new(types::Fd(ring_fd), 0, TAG_WAKE, None)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(TAG_MSG_SEND | eventfd as u32 as u64);
            // SAFETY: a MSG_RING data entry holds no pointers.
            unsafe { self.push(&entry) };
            self.stats.msg_ring_wakes += 1;
            self.enter_now();
        } else {
            self.stats.eventfd_wakes += 1;
            crate::sys::eventfd_signal(eventfd);
        }
    }

    fn reap(&mut self) -> usize {
        let mut n = 0;
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            n += 1;
            let data = cqe.user_data();
            match data & TAG_MASK {
                TAG_OP => {
                    let idx = (data & !TAG_MASK) as usize;
                    self.in_flight -= 1;
                    let done = Completion { result: cqe.result() };
                    match std::mem::replace(&mut self.slots[idx], Slot::Done(done)) {
                        Slot::Waiting(Some(w)) => w.wake(),
                        Slot::Waiting(None) => {}
                        Slot::Abandoned(_, on_orphan) => {
                            self.slots[idx] = Slot::Free;
                            self.free.push(idx);
                            if let Some(f) = on_orphan {
                                f(done.result);
                            }
                        }
                        Slot::Free | Slot::Done(_) => unreachable!("completion for a free slot"),
                    }
                }
                TAG_EVENTFD => {
                    self.in_flight -= 1;
                    self.eventfd_armed = false;
                }
                TAG_MSG_SEND => {
                    // SKIP_SUCCESS: only failures come back. The target ring is gone or full;
                    // fall back to its eventfd so the wake is not lost.
                    crate::sys::eventfd_signal((data & 0xffff_ffff) as u32 as RawFd);
                }
                _ => {} // TAG_WAKE: the wake itself was the point; TAG_CANCEL: nothing to do.
            }
        }
        n
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Invariant 2: nothing the kernel may still write is freed before its completion.
        if self.in_flight == 0 {
            return;
        }
        for (idx, slot) in self.slots.iter().enumerate() {
            if matches!(slot, Slot::Waiting(_) | Slot::Abandoned(..)) {
                let cancel = opcode::AsyncCancel::new(TAG_OP | idx as u64).build().user_data(TAG_CANCEL);
                // SAFETY: a cancel entry holds no pointers. (`push` is not used: it borrows self.)
                while unsafe { self.ring.submission().push(&cancel) }.is_err() {
                    let _ = self.ring.submit();
                }
            }
        }
        if self.eventfd_armed {
            let cancel = opcode::AsyncCancel::new(TAG_EVENTFD).build().user_data(TAG_CANCEL);
            // SAFETY: as above.
            while unsafe { self.ring.submission().push(&cancel) }.is_err() {
                let _ = self.ring.submit();
            }
        }
        while self.in_flight > 0 {
            let ts = types::Timespec::new().nsec(10_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.reap();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ring_setup_picks_the_best_mode_the_kernel_takes() {
        match setup::build_ring(8) {
            Ok((_ring, mode)) => eprintln!("ring mode here: {mode}"),
            Err(e) => {
                eprintln!("SKIPPED: {e}");
                assert!(!e.remedy.is_empty(), "an unavailable ring comes with a remedy");
            }
        }
    }

    #[test]
    fn tags_do_not_overlap_slot_indices() {
        for tag in [TAG_WAKE, TAG_EVENTFD, TAG_CANCEL, TAG_MSG_SEND] {
            assert_eq!(tag & !TAG_MASK, 0);
            assert_ne!(tag, TAG_OP);
        }
        assert_eq!((TAG_MSG_SEND | 0xffff_ffff) & TAG_MASK, TAG_MSG_SEND, "an fd fits below the tag");
    }
}
