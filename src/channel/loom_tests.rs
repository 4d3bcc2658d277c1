//! Loom models of the ring and the sleep/wake handshake. Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --lib --release loom_`.
//!
//! Sizes are tiny on purpose (capacity 2, three items): loom explores every interleaving.

use loom::thread;

use super::doorbell::Doorbell;
use super::ring::{Empty, ring};
use super::spsc::bounded;
use crate::sync::Arc;

const ITEMS: usize = 3;

/// Every item arrives once, in order, and the end of stream comes only after the last one,
/// across a full ring (capacity 2 < 3 items) with batched publication.
#[test]
fn loom_ring_no_lost_or_duplicated_item() {
    loom::model(|| {
        let (mut p, mut c) = ring::<usize>(2);
        let producer = thread::spawn(move || {
            for i in 0..ITEMS {
                let mut v = i;
                loop {
                    match p.try_push(v) {
                        Ok(()) => break,
                        Err(back) => {
                            v = back;
                            p.publish();
                            thread::yield_now();
                        }
                    }
                }
            }
            // drop publishes the tail and marks the producer gone
        });
        let mut next = 0;
        loop {
            match c.try_pop() {
                Ok(v) => {
                    assert_eq!(v, next, "items arrive once and in order");
                    next += 1;
                }
                Err(Empty::Now) => {
                    c.release();
                    thread::yield_now();
                }
                Err(Empty::Closed) => break,
            }
        }
        assert_eq!(next, ITEMS, "end of stream only after every item");
        producer.join().unwrap();
    });
}

/// The shard parking handshake: the consumer arms, re-checks and parks; the producer publishes
/// and wakes only an armed consumer. A lost wake-up would leave the consumer parked forever,
/// which loom reports as a deadlock.
#[test]
fn loom_doorbell_no_lost_wakeup() {
    loom::model(|| {
        let bell = Arc::new(Doorbell::new());
        let (mut p, mut c) = ring::<usize>(4);
        let consumer = {
            let bell = bell.clone();
            thread::spawn(move || {
                let mut got = 0;
                while got < ITEMS {
                    match c.try_pop() {
                        Ok(v) => {
                            assert_eq!(v, got);
                            got += 1;
                        }
                        Err(_) => {
                            c.release();
                            bell.arm();
                            match c.try_pop() {
                                Ok(v) => {
                                    bell.disarm();
                                    assert_eq!(v, got);
                                    got += 1;
                                }
                                Err(_) => {
                                    thread::park();
                                    bell.disarm();
                                }
                            }
                        }
                    }
                }
            })
        };
        let consumer_thread = consumer.thread().clone();
        for i in 0..ITEMS {
            p.try_push(i).unwrap();
            p.publish();
            if bell.take() {
                consumer_thread.unpark();
            }
        }
        consumer.join().unwrap();
    });
}

/// The async ends over a full and an empty ring: `send` parks on room, `recv` parks on items,
/// both through `WaitSlot`; every item arrives and `recv` ends after the last.
#[test]
fn loom_channel_waits_lose_nothing() {
    loom::model(|| {
        let (tx, rx) = bounded::<usize>(2);
        let producer = thread::spawn(move || {
            let tx = tx.connect();
            for i in 0..ITEMS {
                loom::future::block_on(tx.send(i)).unwrap();
            }
        });
        let rx = rx.connect();
        let mut next = 0;
        while let Some(v) = loom::future::block_on(rx.recv()) {
            assert_eq!(v, next);
            next += 1;
        }
        assert_eq!(next, ITEMS);
        producer.join().unwrap();
    });
}

/// The unbound receiving end (`SharedReceiver::poll_recv`, a pipeline's consumer): it releases
/// slots in batches but always before it waits, so a sender parked on a full ring is woken;
/// every item arrives, in order, and the end comes after the last.
#[test]
fn loom_unbound_receiver_loses_nothing() {
    loom::model(|| {
        let (tx, mut rx) = bounded::<usize>(2);
        let producer = thread::spawn(move || {
            let tx = tx.connect();
            for i in 0..ITEMS {
                loom::future::block_on(tx.send(i)).unwrap();
            }
        });
        let mut next = 0;
        while let Some(v) = loom::future::block_on(std::future::poll_fn(|cx| rx.poll_recv(cx))) {
            assert_eq!(v, next);
            next += 1;
        }
        assert_eq!(next, ITEMS);
        producer.join().unwrap();
    });
}
