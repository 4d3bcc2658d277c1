//! Cross-shard channels between real shards: volume, order, backpressure, end of stream, mesh.

mod common;

use std::time::{Duration, Instant};

use shardpipe::channel::{self, SendError, TryRecvError, TrySendError};

/// Mixes the index so that a lost, duplicated or reordered item changes the checksum.
fn mix(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

#[test]
fn ten_million_items_between_two_shards_checksum_verified() {
    let Some(rt) = common::two_shards() else { return };
    let n = common::scaled(10_000_000) as u64;
    let (tx, rx) = channel::bounded::<u64>(1024);
    let producer = rt
        .run_on(0, move || async move {
            let tx = tx.connect();
            for i in 0..n {
                tx.send(mix(i)).await.unwrap();
            }
        })
        .unwrap();
    let consumer = rt
        .run_on(1, move || async move {
            let rx = rx.connect();
            let mut buf = Vec::with_capacity(1024);
            let (mut count, mut ordered, mut xor, mut sum) = (0u64, true, 0u64, 0u64);
            loop {
                buf.clear();
                if rx.recv_many(&mut buf, 1024).await == 0 {
                    break;
                }
                for &v in &buf {
                    ordered &= v == mix(count);
                    count += 1;
                    xor ^= v;
                    sum = sum.wrapping_add(v);
                }
            }
            (count, ordered, xor, sum)
        })
        .unwrap();
    producer.join().unwrap();
    let (count, ordered, xor, sum) = consumer.join().unwrap();
    let (exor, esum) = (0..n).fold((0u64, 0u64), |(x, s), i| (x ^ mix(i), s.wrapping_add(mix(i))));
    assert_eq!(count, n);
    assert!(ordered, "items arrive in send order");
    assert_eq!((xor, sum), (exor, esum));
}

#[test]
fn ping_pong_between_shards() {
    let Some(rt) = common::two_shards() else { return };
    let rounds = common::scaled(20_000) as u32;
    let (ping_tx, ping_rx) = channel::bounded::<u32>(2);
    let (pong_tx, pong_rx) = channel::bounded::<u32>(2);
    let echo = rt
        .run_on(1, move || async move {
            let (rx, tx) = (ping_rx.connect(), pong_tx.connect());
            let mut n = 0;
            while let Some(v) = rx.recv().await {
                tx.send(v + 1).await.unwrap();
                n += 1;
            }
            n
        })
        .unwrap();
    let pinger = rt
        .run_on(0, move || async move {
            let (tx, rx) = (ping_tx.connect(), pong_rx.connect());
            for i in 0..rounds {
                tx.send(i).await.unwrap();
                assert_eq!(rx.recv().await, Some(i + 1));
            }
        })
        .unwrap();
    pinger.join().unwrap();
    assert_eq!(echo.join().unwrap(), rounds);
}

#[test]
fn ping_pong_with_parking_shards_wakes_by_msg_ring() {
    ping_pong_with_parking_shards(false);
}

#[test]
fn ping_pong_with_parking_shards_wakes_by_eventfd() {
    ping_pong_with_parking_shards(true);
}

/// No spinning: every message must be delivered through the park/doorbell path.
fn ping_pong_with_parking_shards(eventfd_wake: bool) {
    let Some(rt) = common::runtime(|b| {
        b.shards(2).oversubscribe(true).spin_before_park(Duration::ZERO).eventfd_wake(eventfd_wake);
    }) else {
        return;
    };
    let uses_msg_ring = rt.shard_infos().iter().all(|i| i.msg_ring);
    if eventfd_wake {
        assert!(!uses_msg_ring, "eventfd_wake(true) turns MSG_RING off");
    }
    let (ping_tx, ping_rx) = channel::bounded::<u32>(2);
    let (pong_tx, pong_rx) = channel::bounded::<u32>(2);
    rt.run_on(1, move || async move {
        let (rx, tx) = (ping_rx.connect(), pong_tx.connect());
        while let Some(v) = rx.recv().await {
            tx.send(v).await.unwrap();
        }
    })
    .unwrap();
    let h = rt
        .run_on(0, move || async move {
            let (tx, rx) = (ping_tx.connect(), pong_rx.connect());
            for i in 0..2000 {
                tx.send(i).await.unwrap();
                assert_eq!(rx.recv().await, Some(i));
                if i % 100 == 0 {
                    shardpipe::time::sleep(Duration::from_micros(200)).await; // let the peer park
                }
            }
        })
        .unwrap();
    h.join().unwrap();
    let reports = rt.shutdown();
    let parks: u64 = reports.iter().map(|r| r.driver.parks).sum();
    assert!(parks > 0, "the shards parked between messages");
    let (msg, efd): (u64, u64) =
        reports.iter().fold((0, 0), |(m, e), r| (m + r.driver.msg_ring_wakes, e + r.driver.eventfd_wakes));
    if uses_msg_ring {
        assert!(msg > 0 && efd == 0, "peers were woken by MSG_RING ({msg}) and never by eventfd ({efd})");
    } else {
        assert!(efd > 0 && msg == 0, "peers were woken by eventfd ({efd}) and never by MSG_RING ({msg})");
    }
}

#[test]
fn send_waits_when_full_and_never_drops() {
    let Some(rt) = common::two_shards() else { return };
    let (tx, rx) = channel::bounded::<u32>(4);
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let producer = rt
        .run_on(0, move || async move {
            let tx = tx.connect();
            let start = Instant::now();
            for i in 0..100 {
                tx.send(i).await.unwrap();
            }
            start.elapsed()
        })
        .unwrap();
    // The consumer does not read yet: the producer must be blocked with the ring full.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!producer.is_finished(), "a full ring blocks the sender");
    gate_tx.send(()).unwrap();
    let consumer = rt
        .run_on(1, move || async move {
            gate_rx.recv().unwrap();
            let rx = rx.connect();
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        })
        .unwrap();
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), (0..100).collect::<Vec<_>>());
}

#[test]
fn send_to_a_dropped_receiver_hands_the_value_back() {
    let (tx, rx) = channel::bounded::<String>(4);
    drop(rx);
    let tx = tx.connect();
    assert_eq!(tx.send_blocking("kept".into()), Err(SendError("kept".into())));
    assert_eq!(tx.try_send("also".into()), Err(TrySendError::Disconnected("also".into())));
}

#[test]
fn end_of_stream_only_after_every_item() {
    let (tx, rx) = channel::bounded::<u8>(8);
    let (tx, rx) = (tx.connect(), rx.connect());
    for i in 0..5 {
        tx.try_send(i).unwrap();
    }
    assert_eq!(tx.try_send(5), Ok(()));
    drop(tx);
    assert!(rx.is_sender_gone());
    let got: Vec<u8> = std::iter::from_fn(|| rx.recv_blocking()).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn try_send_reports_full_with_the_value() {
    let (tx, rx) = channel::bounded::<u8>(2);
    let (tx, rx) = (tx.connect(), rx.connect());
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(3).unwrap();
    assert_eq!(rx.len(), 2);
}

#[test]
fn try_send_many_sends_what_fits_in_order_and_keeps_the_rest() {
    let (tx, rx) = channel::bounded::<u8>(4);
    let (tx, rx) = (tx.connect(), rx.connect());
    let mut run = vec![1, 2, 3, 4, 5, 6];
    assert_eq!(tx.try_send_many(&mut run), Err(TrySendError::Full(())));
    assert_eq!(run, vec![5, 6], "what did not fit stays, in order");
    assert_eq!(rx.try_recv(), Ok(1), "what went is visible at once");
    assert_eq!(tx.try_send_many(&mut run), Err(TrySendError::Full(())));
    assert_eq!(run, vec![6]);
    let got: Vec<u8> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(got, vec![2, 3, 4, 5]);
    assert_eq!(tx.try_send_many(&mut run), Ok(()));
    assert!(run.is_empty());
    assert_eq!(rx.try_recv(), Ok(6));
    drop(rx);
    let mut late = vec![7, 8];
    assert_eq!(tx.try_send_many(&mut late), Err(TrySendError::Disconnected(())));
    assert_eq!(late, vec![7, 8], "nothing is taken when the receiver is gone");
}

#[test]
fn mesh_all_to_all_delivers_everything() {
    let Some(rt) = common::runtime(|b| {
        b.shards(4).oversubscribe(true);
    }) else {
        return;
    };
    let per_pair = common::scaled(50_000) as u64;
    let peers = channel::mesh::<(usize, u64)>(4, 64);
    let handles: Vec<_> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            rt.run_on(i, move || async move {
                let (tx, rx) = peer.connect();
                let sender = shardpipe::spawn_local(async move {
                    for v in 0..per_pair {
                        for to in 0..tx.peers() {
                            tx.send_to(to, (i, v)).await.unwrap();
                        }
                    }
                });
                let mut next = [0u64; 4];
                let mut total = 0;
                while let Some((from, (src, v))) = rx.recv().await {
                    assert_eq!(from, src, "the mesh reports the sending peer");
                    assert_eq!(v, next[from], "per-source order is kept");
                    next[from] += 1;
                    total += 1;
                }
                sender.await.unwrap();
                total
            })
            .unwrap()
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 4 * per_pair);
    }
}
