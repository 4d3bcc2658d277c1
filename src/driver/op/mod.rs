//! Operation futures in the owned-buffer style: an [`Op`] owns everything the kernel reads or
//! writes, and hands it back with the result. One operation per file below.
//!
//! Dropping an `Op` before it completes moves its data into the driver's slot and submits a cancel
//! (see the driver's `# Safety` invariant 1), so no buffer is freed under the kernel.

pub(crate) mod close;
pub(crate) mod open;
pub(crate) mod read;
pub(crate) mod statx;
pub(crate) mod timeout;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::squeue;

use super::{Completion, Started};
use crate::runtime::context;

/// An operation in flight on the current shard's ring (or, with the fallback driver, already
/// done).
#[derive(Debug)]
pub(crate) struct Op<D: 'static> {
    started: Started,
    data: Option<D>,
    /// What to do with a successful result if the future is dropped before taking it.
    on_orphan: Option<fn(i32)>,
    /// Bound to the shard whose driver holds the slot.
    _not_send: PhantomData<*const ()>,
}

/// Why an operation could not be started.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("io operations must run inside a shard task (spawn it with Runtime::spawn_on or spawn_local)")]
pub struct NotOnShard;

impl<D: 'static> Op<D> {
    /// Submits `entry`, whose pointers point into heap memory owned by `data`; without a ring,
    /// runs `sync` on `data` instead: the same operation as a plain syscall, returning its result
    /// in the kernel's convention (the value, or `-errno`; see [`syscall_result`]).
    ///
    /// # Safety
    /// Every pointer in `entry` must point into heap allocations owned by `data` (not into
    /// `data`'s own bytes, which move), valid for as long as `data` lives.
    pub(crate) unsafe fn submit(
        entry: squeue::Entry,
        mut data: D,
        sync: impl FnOnce(&mut D) -> i32,
    ) -> Result<Self, NotOnShard> {
        let started = context::with_driver(|d| {
            // SAFETY: the caller guarantees the pointers live in `data`, which this `Op` keeps
            // until the completion is reaped or hands to `Driver::abandon`.
            unsafe { d.start(entry, || sync(&mut data)) }
        })
        .ok_or(NotOnShard)?;
        Ok(Self { started, data: Some(data), on_orphan: None, _not_send: PhantomData })
    }

    /// Hands a result that completes after the future was dropped to `f` (an opened
    /// descriptor nobody will own must still be closed).
    pub(crate) fn on_orphan(mut self, f: fn(i32)) -> Self {
        self.on_orphan = Some(f);
        self
    }
}

/// A libc return value in the kernel's convention: the value, or `-errno` when it is negative.
pub(crate) fn syscall_result(rc: isize) -> i32 {
    if rc < 0 {
        -std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
    } else {
        i32::try_from(rc).unwrap_or(i32::MAX)
    }
}

impl<D: Unpin + 'static> Future for Op<D> {
    type Output = (Completion, D);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let done = match self.started {
            Started::Done(c) => Poll::Ready(c),
            Started::Pending(idx) => {
                context::with_driver(|d| d.poll_op(idx, cx)).expect("an Op is created and polled on its shard")
            }
        };
        match done {
            Poll::Ready(c) => Poll::Ready((c, self.data.take().expect("Op polled after completion"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<D: 'static> Drop for Op<D> {
    fn drop(&mut self) {
        match (self.data.take(), self.started) {
            (Some(data), Started::Pending(idx)) => {
                // If the shard's context is already gone the driver was dropped too, and its
                // drop waited for this completion before returning (driver invariant 2).
                let on_orphan = self.on_orphan;
                let _ = context::with_driver(|d| d.abandon(idx, Box::new(data), on_orphan));
            }
            // Done (the fallback) but never taken.
            (Some(_), Started::Done(c)) => {
                if let Some(f) = self.on_orphan {
                    f(c.result);
                }
            }
            _ => {}
        }
    }
}
