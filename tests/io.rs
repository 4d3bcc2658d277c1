//! File operations and timers through a shard's io_uring.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use shardpipe::io::File;
use shardpipe::time::{Elapsed, sleep, timeout};
use shardpipe::{spawn_local, yield_now};

fn temp_file(name: &str, len: usize) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shardpipe-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect();
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn read_whole_file_equals_std_fs_read() {
    let Some(rt) = common::two_shards() else { return };
    for (i, len) in [0usize, 1, 4095, 4096, 128 * 1024, 3 * 1024 * 1024 + 7].into_iter().enumerate() {
        let path = temp_file(&format!("whole-{i}"), len);
        let expected = std::fs::read(&path).unwrap();
        let p = path.clone();
        let got = common::on(&rt, i % 2, move || async move { shardpipe::io::read(&p).await.unwrap() });
        assert_eq!(got.len(), expected.len(), "length of {}", path.display());
        assert!(got == expected, "contents of {}", path.display());
    }
}

#[test]
fn read_at_offset_size_and_close() {
    let Some(rt) = common::two_shards() else { return };
    let path = temp_file("offsets", 10_000);
    let expected = std::fs::read(&path).unwrap();
    let (size, chunk, tail) = common::on(&rt, 0, move || async move {
        let f = File::open(&path).await.unwrap();
        let size = f.size().await.unwrap();
        let (n, chunk) = f.read_at(Vec::with_capacity(100), 5000).await;
        assert_eq!(n.unwrap(), 100);
        // Reading past the end returns 0 bytes and hands the buffer back untouched.
        let (n, tail) = f.read_at(Vec::with_capacity(64), 20_000).await;
        assert_eq!(n.unwrap(), 0);
        f.close().await.unwrap();
        (size, chunk, tail)
    });
    assert_eq!(size, 10_000);
    assert_eq!(chunk, expected[5000..5100]);
    assert!(tail.is_empty() && tail.capacity() >= 64, "the buffer comes back");
}

#[test]
fn open_errors_name_the_kernel_reason() {
    let Some(rt) = common::two_shards() else { return };
    let err = common::on(&rt, 0, || async { File::open("/definitely/not/here").await.map(|_| ()) }).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let err = common::on(&rt, 0, || async { File::open("a\0b").await.map(|_| ()) }).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn io_off_a_shard_is_an_error_not_a_hang() {
    let err = shardpipe::runtime::block_on(shardpipe::io::read("/etc/hostname")).unwrap_err();
    assert!(err.to_string().contains("inside a shard task"), "{err}");
}

#[test]
fn dropping_an_in_flight_read_parks_the_buffer_until_cancelled() {
    let Some(rt) = common::two_shards() else { return };
    if !rt.ring_mode().is_uring() {
        // The fallback's reads are synchronous: nothing is ever in flight to drop.
        eprintln!("SKIPPED: the fallback driver has no in-flight reads (SHARDPIPE_DRIVER=fallback)");
        return;
    }
    // A pipe with a live writer and no data: a read on it stays in flight until cancelled.
    let (reader, mut writer) = std::io::pipe().unwrap();
    let path = format!("/proc/self/fd/{}", reader.as_raw_fd());
    let outcome = common::on(&rt, 0, move || async move {
        let f = File::open(&path).await.unwrap();
        let r = timeout(Duration::from_millis(20), f.read_at(Vec::with_capacity(1 << 20), 0)).await;
        // The read future was dropped while the kernel owned its buffer; the shard must keep
        // running and later operations must still complete.
        let again = timeout(Duration::from_millis(20), f.read_at(Vec::with_capacity(16), 0)).await;
        (r.is_err(), again.is_err())
    });
    assert_eq!(outcome, (true, true), "both reads timed out");
    writer.write_all(b"late").unwrap(); // nobody reads this: the cancelled ops must not resurrect
    drop(rt); // the driver waits for every cancelled op before freeing its memory
    drop(reader);
}

#[test]
fn uring_timeout_op_completes() {
    let Some(rt) = common::two_shards() else { return };
    let waited = common::on(&rt, 1, || async {
        let t = Instant::now();
        shardpipe::io::uring_timeout(Duration::from_millis(5)).await.unwrap();
        t.elapsed()
    });
    assert!(waited >= Duration::from_millis(5), "waited {waited:?}");
}

#[test]
fn sleeps_fire_in_deadline_order() {
    let Some(rt) = common::two_shards() else { return };
    let order = rt
        .run_on(0, || async {
            let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for ms in [30u64, 10, 20, 0] {
                let log = log.clone();
                tasks.push(spawn_local(async move {
                    sleep(Duration::from_millis(ms)).await;
                    log.borrow_mut().push(ms);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            log.take()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(order, vec![0, 10, 20, 30]);
}

#[test]
fn many_thousands_of_timers_at_once() {
    let Some(rt) = common::two_shards() else { return };
    let n = common::scaled(20_000);
    let fired = rt
        .run_on(1, move || async move {
            let count = std::rc::Rc::new(std::cell::Cell::new(0usize));
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let c = count.clone();
                    spawn_local(async move {
                        sleep(Duration::from_micros((i % 5000) as u64)).await;
                        c.set(c.get() + 1);
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            count.get()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(fired, n);
}

#[test]
fn timeout_returns_value_or_elapsed() {
    let Some(rt) = common::two_shards() else { return };
    let (fast, slow) = common::on(&rt, 0, || async {
        let fast = timeout(Duration::from_secs(5), async {
            yield_now().await;
            7
        })
        .await;
        let slow = timeout(Duration::from_millis(2), sleep(Duration::from_secs(60))).await;
        (fast, slow)
    });
    assert_eq!(fast, Ok(7));
    assert_eq!(slow, Err(Elapsed));
}
