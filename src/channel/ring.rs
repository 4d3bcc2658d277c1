//! The bounded single-producer/single-consumer ring under every cross-shard channel.
//!
//! # Layout
//! `head` (consumer's next read) and `tail` (producer's last publication) live on separate
//! 128-byte lines; each side keeps a private copy of the other's index and reloads it only when
//! its copy says "full" (producer) or "empty" (consumer), so a streaming pair touches the other
//! side's line about once per lap instead of once per item. The producer writes slots without
//! publishing and [`Producer::publish`] stores `tail` once for the whole batch; symmetrically the
//! consumer takes items without handing their slots back and [`Consumer::release`] stores `head`
//! once for the batch, so a producer waiting for room does not pull the `head` line on every pop.
//!
//! Indices are free-running `usize` counters (wrapping); a slot is `index & mask`.
//!
//! # Safety
//! The invariants every `unsafe` block below relies on:
//! 1. **Ownership by index.** Slots in `[head, tail)` hold initialised values owned by the
//!    consumer; all other slots are uninitialised and owned by the producer. `Producer` and
//!    `Consumer` are unique (not `Clone`, created once by [`ring`]), so each range has one writer.
//! 2. **Publication.** The producer writes a slot before it stores `tail` with `Release`; the
//!    consumer loads `tail` with `Acquire` before reading a slot. Symmetrically the consumer
//!    moves a value out before storing `head` with `Release` (in [`Consumer::release`]), and the
//!    producer loads `head` with `Acquire` before reusing that slot. Between a take and its
//!    release the slot is empty but still counted as the consumer's: the producer never writes it.
//! 3. **Unpublished slots** (between the published `tail` and the producer's private tail) are
//!    initialised but invisible to the consumer; `Producer::drop` publishes them so that the ring's
//!    own `Drop`, which runs when both ends are gone, drops every value exactly once.

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::wait::WaitSlot;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// Cache line size assumed for the producer's prefetch stride.
const LINE: usize = 64;
/// How many lines ahead of its write position the producer prefetches.
/// (4, 8, 16 and 32 measured within noise of each other here; 8 covers ~2 µs of production at
/// streaming speed, longer than a cross-core ownership transfer.)
const PREFETCH_LINES: usize = 8;

/// State shared by the two ends of one ring.
pub(crate) struct Shared<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    /// The consumer parks here while the ring is empty.
    pub(crate) recv_wait: CachePadded<WaitSlot>,
    /// The producer parks here while the ring is full.
    pub(crate) send_wait: CachePadded<WaitSlot>,
    producer_gone: AtomicBool,
    consumer_gone: AtomicBool,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
}

// SAFETY: values of `T` move from the producer's thread to the consumer's, so `T: Send` is
// needed and enough; slot access is partitioned by index (module invariant 1).
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above; the two ends touch disjoint slots and synchronise through `head`/`tail`.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("capacity", &self.slots.len()).finish_non_exhaustive()
    }
}

/// Creates a ring holding up to `capacity` items (rounded up to a power of two, at least 2).
pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let slots = (0..cap).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        recv_wait: CachePadded::new(WaitSlot::new()),
        send_wait: CachePadded::new(WaitSlot::new()),
        producer_gone: AtomicBool::new(false),
        consumer_gone: AtomicBool::new(false),
        slots,
        mask: cap - 1,
    });
    let producer = Producer { shared: shared.clone(), tail: 0, published: 0, cached_head: 0 };
    let consumer = Consumer { shared, head: 0, released: 0, cached_tail: 0 };
    (producer, consumer)
}

impl<T> Shared<T> {
    fn capacity(&self) -> usize {
        self.mask + 1
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both ends are gone (we hold the last reference), so `[head, tail)` is everything left
        // (invariant 3: the producer published its batch when it was dropped).
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        let mut i = head;
        while i != tail {
            self.slots[i & self.mask].with_mut(|p| {
                // SAFETY: `i` is in `[head, tail)`, so the slot is initialised (invariant 1),
                // and nobody else can reach it any more.
                unsafe { (*p).assume_init_drop() }
            });
            i = i.wrapping_add(1);
        }
    }
}

/// The writing end. Not `Clone`: exactly one producer exists per ring.
#[derive(Debug)]
pub(crate) struct Producer<T> {
    pub(crate) shared: Arc<Shared<T>>,
    /// Private tail: next slot to write (may run ahead of the published tail).
    tail: usize,
    /// The value of `shared.tail` this producer last stored.
    published: usize,
    /// Last `head` this producer read; items below it are known consumed.
    cached_head: usize,
}

impl<T> Producer<T> {
    /// Slots per cache line (at least 1): the producer prefetches once per line.
    const SLOTS_PER_LINE: usize = {
        let size = std::mem::size_of::<T>();
        if size == 0 || size >= LINE { 1 } else { LINE / size }
    };
    /// Prefetch distance in slots.
    const PREFETCH_AHEAD: usize = Self::SLOTS_PER_LINE * PREFETCH_LINES;

    /// Ring capacity in items.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Writes `value` into the next free slot without publishing it, or hands it back if full.
    #[inline(always)]
    pub(crate) fn try_push(&mut self, value: T) -> Result<(), T> {
        let cap = self.shared.capacity();
        if self.tail.wrapping_sub(self.cached_head) == cap {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.cached_head) == cap {
                return Err(value);
            }
        }
        let idx = self.next_slot();
        self.shared.slots[idx].with_mut(|p| {
            // SAFETY: `tail - head < capacity`, so this slot is outside `[head, tail)` and owned
            // by the producer (invariant 1); the `Acquire` load of `head` above (or an earlier
            // one) ordered the consumer's move-out before this write (invariant 2).
            unsafe { (*p).write(value) };
        });
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Moves as many of `values` as there are free slots for into the ring, from the front and
    /// in order, without publishing them; the rest move to the front of `values`. Returns how
    /// many went. Each value is copied from the vector's buffer straight into its slot: moving
    /// them one by one out of the vector stages each on the stack, where a 16-byte reload of a
    /// value just written in 8-byte pieces stalls (no store-to-load forwarding).
    pub(crate) fn push_from(&mut self, values: &mut Vec<T>) -> usize {
        let len = values.len();
        let n = self.room_for(len);
        let src = values.as_mut_ptr();
        // SAFETY: the vector forgets its elements first, so a panic below cannot drop one
        // twice (it would leak instead); each is then read exactly once, below.
        unsafe { values.set_len(0) };
        for i in 0..n {
            let idx = self.next_slot();
            self.shared.slots[idx].with_mut(|p| {
                // SAFETY: `room_for` counted `n` free slots from the `Acquire` load of `head`
                // (invariants 1 and 2, as in `try_push`); `src.add(i)` is element `i < len`,
                // initialised and read only here.
                unsafe { (*p).write(std::ptr::read(src.add(i))) };
            });
            self.tail = self.tail.wrapping_add(1);
        }
        // SAFETY: elements `n..len` are initialised and not yet read; `copy` allows the
        // overlap, and the vector then owns exactly those `len - n` moved elements.
        unsafe {
            std::ptr::copy(src.add(n), src, len - n);
            values.set_len(len - n);
        }
        n
    }

    /// The slot index for the next write, prefetching the line far ahead once per line.
    #[inline(always)]
    fn next_slot(&self) -> usize {
        let idx = self.tail & self.shared.mask;
        if idx.is_multiple_of(Self::SLOTS_PER_LINE) {
            self.prefetch_for_write((idx + Self::PREFETCH_AHEAD) & self.shared.mask);
        }
        idx
    }

    /// Asks the CPU to take slot `idx`'s cache line for writing ahead of time (`prefetchw`), so the
    /// store that fills it does not sit in the store buffer waiting for the line to come back from
    /// the consumer's core (docs/benchmarks.md: the async producer went from 12.7 to ~7 ns per item).
    #[inline(always)]
    fn prefetch_for_write(&self, idx: usize) {
        #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
        self.shared.slots[idx].with(|p| {
            // SAFETY: `prefetchw` is a hint: it never faults, writes no memory, and is a NOP on
            // CPUs without it; the address is inside the slot array anyway.
            unsafe {
                std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
            }
        });
        #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
        let _ = idx;
    }

    /// Items written but not yet visible to the consumer.
    #[inline]
    pub(crate) fn unpublished(&self) -> usize {
        self.tail.wrapping_sub(self.published)
    }

    /// Makes every written item visible to the consumer with one `Release` store.
    /// Returns true when something new was published.
    #[inline]
    pub(crate) fn publish(&mut self) -> bool {
        if self.tail == self.published {
            return false;
        }
        self.shared.tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
        true
    }

    /// True when the consumer end has been dropped (further items would never be read).
    pub(crate) fn is_consumer_gone(&self) -> bool {
        self.shared.consumer_gone.load(Ordering::Acquire)
    }

    /// Free slots, up to `want`: counted from the cached head, refreshed only when that shows
    /// fewer than `want`.
    #[inline]
    fn room_for(&mut self, want: usize) -> usize {
        let cap = self.shared.capacity();
        if cap - self.tail.wrapping_sub(self.cached_head) < want {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
        }
        (cap - self.tail.wrapping_sub(self.cached_head)).min(want)
    }

    /// True when at least one slot is free (refreshes the cached head).
    #[inline]
    pub(crate) fn has_room(&mut self) -> bool {
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.cached_head) < self.shared.capacity()
    }

    /// Items written and not yet taken by the consumer, published or not (refreshes the cached
    /// head: one load of the consumer's line).
    #[inline]
    pub(crate) fn queued(&mut self) -> usize {
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.cached_head)
    }

    /// Free slots as last seen (refreshes the cached head).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn free(&mut self) -> usize {
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        self.shared.capacity() - self.tail.wrapping_sub(self.cached_head)
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.publish();
        self.shared.producer_gone.store(true, Ordering::Release);
        self.shared.recv_wait.notify();
    }
}

/// The reading end. Not `Clone`: exactly one consumer exists per ring.
#[derive(Debug)]
pub(crate) struct Consumer<T> {
    pub(crate) shared: Arc<Shared<T>>,
    /// Private head: next slot to read.
    head: usize,
    /// The value of `shared.head` this consumer last stored (slots below it are the producer's).
    released: usize,
    /// Last `tail` this consumer read; items below it are known published.
    cached_tail: usize,
}

/// What a pop found when it found no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Empty {
    /// Nothing now; the producer is still there.
    Now,
    /// Nothing now and nothing ever again: the producer is gone and every item was drained.
    Closed,
}

impl<T> Consumer<T> {
    /// Ring capacity in items.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    #[inline]
    fn refresh(&mut self) -> usize {
        if self.head == self.cached_tail {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        }
        self.cached_tail.wrapping_sub(self.head)
    }

    #[inline]
    fn take_slot(&mut self) -> T {
        let idx = self.head & self.shared.mask;
        let value = self.shared.slots[idx].with(|p| {
            // SAFETY: `head < cached_tail`, a published tail loaded with `Acquire`, so the slot
            // is initialised and owned by the consumer (invariants 1 and 2); advancing `head`
            // below hands the slot back exactly once.
            unsafe { (*p).assume_init_read() }
        });
        self.head = self.head.wrapping_add(1);
        value
    }

    /// Takes the oldest published item. Its slot goes back to the producer at the next
    /// [`Consumer::release`].
    #[inline]
    pub(crate) fn try_pop(&mut self) -> Result<T, Empty> {
        if self.refresh() == 0 {
            return Err(self.empty_kind());
        }
        Ok(self.take_slot())
    }

    /// Moves up to `max` published items into `sink`; returns how many. Like [`Consumer::try_pop`]
    /// it leaves the release (and waking a producer that waits for room) to the caller.
    pub(crate) fn pop_batch(&mut self, max: usize, mut sink: impl FnMut(T)) -> Result<usize, Empty> {
        let n = self.refresh().min(max);
        if n == 0 {
            return Err(self.empty_kind());
        }
        for _ in 0..n {
            let v = self.take_slot();
            sink(v);
        }
        Ok(n)
    }

    /// Hands every taken slot back to the producer with one `Release` store of `head`.
    /// Returns true when something new was released.
    #[inline]
    pub(crate) fn release(&mut self) -> bool {
        if self.head == self.released {
            return false;
        }
        self.shared.head.store(self.head, Ordering::Release);
        self.released = self.head;
        true
    }

    /// Items taken whose slots have not been released yet.
    #[inline]
    pub(crate) fn unreleased(&self) -> usize {
        self.head.wrapping_sub(self.released)
    }

    /// Distinguishes "empty for now" from "closed and drained": the producer's `Release` store of
    /// `producer_gone` follows its final publish, so after seeing it we re-read `tail` once.
    fn empty_kind(&mut self) -> Empty {
        if self.shared.producer_gone.load(Ordering::Acquire) {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            if self.cached_tail == self.head { Empty::Closed } else { Empty::Now }
        } else {
            Empty::Now
        }
    }

    /// Published items not yet taken (reloads the tail).
    pub(crate) fn len(&mut self) -> usize {
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        self.cached_tail.wrapping_sub(self.head)
    }

    /// True when the producer is gone (items may still be left to drain).
    pub(crate) fn is_producer_gone(&self) -> bool {
        self.shared.producer_gone.load(Ordering::Acquire)
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Taken values are gone; `Shared::drop` must only see the slots still holding values.
        self.release();
        self.shared.consumer_gone.store(true, Ordering::Release);
        self.shared.send_wait.notify();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const COUNT: usize = if cfg!(miri) { 2_000 } else { 200_000 };

    #[test]
    fn push_from_moves_what_fits_and_keeps_the_rest_in_order() {
        let (mut p, mut c) = ring::<String>(4);
        p.try_push("a".into()).unwrap();
        let mut values: Vec<String> = ["b", "c", "d", "e", "f"].map(String::from).into();
        assert_eq!(p.push_from(&mut values), 3, "three slots were free");
        assert_eq!(values, ["e", "f"], "the rest stays, in order");
        assert!(p.publish());
        let got: Vec<String> = std::iter::from_fn(|| c.try_pop().ok()).collect();
        assert_eq!(got, ["a", "b", "c", "d"]);
        assert_eq!(p.push_from(&mut values), 0, "taken slots are not free until released");
        assert!(c.release());
        assert_eq!(p.push_from(&mut values), 2);
        assert!(values.is_empty());
        // Unpublished values are dropped with the ring (miri checks each is dropped once).
        drop((p, c));
    }

    #[test]
    fn push_until_full_then_pop_in_order() {
        let (mut p, mut c) = ring::<u32>(4);
        for i in 0..4 {
            p.try_push(i).unwrap();
        }
        assert_eq!(p.try_push(9), Err(9), "a full ring hands the value back");
        assert_eq!(c.try_pop(), Err(Empty::Now), "nothing is visible before publish");
        assert!(p.publish());
        assert!(!p.publish(), "publishing twice publishes nothing new");
        for i in 0..4 {
            assert_eq!(c.try_pop(), Ok(i));
        }
        assert_eq!(c.try_pop(), Err(Empty::Now));
        assert_eq!(p.try_push(9), Err(9), "taken but unreleased slots still count as used");
        assert_eq!(c.unreleased(), 4);
        assert!(c.release());
        assert_eq!(p.try_push(9), Ok(()));
    }

    #[test]
    fn capacity_rounds_up_to_power_of_two() {
        let (p, c) = ring::<u8>(5);
        assert_eq!(p.capacity(), 8);
        assert_eq!(c.capacity(), 8);
        let (p, _c) = ring::<u8>(0);
        assert_eq!(p.capacity(), 2);
    }

    #[test]
    fn closed_only_after_drain() {
        let (mut p, mut c) = ring::<String>(8);
        p.try_push("a".into()).unwrap();
        p.try_push("b".into()).unwrap();
        drop(p); // publishes the batch
        assert!(c.is_producer_gone());
        assert_eq!(c.try_pop().as_deref(), Ok("a"));
        assert_eq!(c.try_pop().as_deref(), Ok("b"));
        assert_eq!(c.try_pop(), Err(Empty::Closed));
    }

    #[test]
    fn unread_items_are_dropped_exactly_once() {
        let marker = std::sync::Arc::new(());
        let (mut p, mut c) = ring(8);
        for _ in 0..5 {
            p.try_push(marker.clone()).unwrap();
        }
        p.publish();
        drop(c.try_pop().unwrap()); // taken, never released: must not be dropped twice
        p.try_push(marker.clone()).unwrap(); // unpublished at drop time
        drop(p);
        drop(c);
        assert_eq!(std::sync::Arc::strong_count(&marker), 1);
    }

    #[test]
    fn batch_pop_drains_everything_available() {
        let (mut p, mut c) = ring::<usize>(16);
        for i in 0..10 {
            p.try_push(i).unwrap();
        }
        p.publish();
        let mut got = Vec::new();
        assert_eq!(c.pop_batch(4, |v| got.push(v)), Ok(4));
        assert_eq!(c.pop_batch(100, |v| got.push(v)), Ok(6));
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(c.pop_batch(100, |_| ()), Err(Empty::Now));
        assert_eq!(p.free(), 6, "taken slots stay the consumer's until released");
        assert!(c.release());
        assert_eq!(p.free(), 16);
    }

    #[test]
    fn indices_wrap_around_many_laps() {
        let (mut p, mut c) = ring::<usize>(4);
        for i in 0..1000 {
            p.try_push(i).unwrap();
            p.publish();
            assert_eq!(c.try_pop(), Ok(i));
            c.release();
        }
    }

    #[test]
    fn two_threads_move_every_item_once_in_order() {
        let (mut p, mut c) = ring::<usize>(64);
        let producer = std::thread::spawn(move || {
            for i in 0..COUNT {
                let mut v = i;
                loop {
                    match p.try_push(v) {
                        Ok(()) => break,
                        Err(back) => {
                            v = back;
                            p.publish();
                            std::thread::yield_now();
                        }
                    }
                }
                if p.unpublished() >= 16 {
                    p.publish();
                }
            }
        });
        let mut expected = 0;
        let mut sum = 0usize;
        loop {
            match c.pop_batch(usize::MAX, |v| {
                assert_eq!(v, expected, "items arrive once and in order");
                expected += 1;
                sum = sum.wrapping_add(v);
            }) {
                Ok(_) => {
                    c.release();
                }
                Err(Empty::Now) => std::thread::yield_now(),
                Err(Empty::Closed) => break,
            }
        }
        producer.join().unwrap();
        assert_eq!(expected, COUNT);
        assert_eq!(sum, COUNT * (COUNT - 1) / 2);
    }
}
