//! Loom facade: every atomic, `Arc`, `Mutex` and `UnsafeCell` the lock-free code uses comes from
//! here, so that `RUSTFLAGS="--cfg loom"` swaps the whole set for loom's model-checked versions.
//!
//! Code outside this module never names `std::sync::atomic` or `std::cell::UnsafeCell` directly
//! in the channel and doorbell paths; a model that missed one of them would check nothing.

#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering, fence},
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering, fence},
};

/// Locks a mutex; a poisoned lock still yields its data (a panicking task must not wedge a shard).
pub(crate) fn lock<T>(m: &Mutex<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `UnsafeCell` with loom's closure-style access, so the model can track every read and write.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `UnsafeCell` with loom's closure-style access, so the model can track every read and write.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
