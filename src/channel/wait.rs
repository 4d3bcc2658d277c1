//! A parked task's waker behind a [`Doorbell`]: the slow path of a channel end that must wait.
//!
//! The waiter stores its waker, arms, and re-checks; the notifier takes the doorbell and wakes the
//! stored waker. The mutex is touched only on that slow path, never while items flow.

use std::task::Waker;

use super::doorbell::Doorbell;
use crate::sync::{Mutex, lock};

/// Where one channel end parks its task.
#[derive(Debug)]
pub(crate) struct WaitSlot {
    bell: Doorbell,
    waker: Mutex<Option<Waker>>,
}

impl WaitSlot {
    pub(crate) fn new() -> Self {
        Self { bell: Doorbell::new(), waker: Mutex::new(None) }
    }

    /// Waiter: park `waker` and arm. The caller must re-check its condition afterwards and call
    /// [`WaitSlot::cancel`] if it no longer needs to wait.
    pub(crate) fn register(&self, waker: &Waker) {
        {
            let mut slot = lock(&self.waker);
            match &*slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
        self.bell.arm();
    }

    /// Waiter: the re-check found what it waited for.
    pub(crate) fn cancel(&self) {
        self.bell.disarm();
    }

    /// Notifier: after publishing, wake the parked task if it announced that it waits.
    #[inline]
    pub(crate) fn notify(&self) {
        if self.bell.take() {
            let waker = lock(&self.waker).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}
