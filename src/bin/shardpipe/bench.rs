//! `shardpipe bench`: the runtime's micro-measures on this machine, in seconds — the ring set-up
//! each shard chose, streaming hand-off around the shards (checksummed), a ping-pong round trip,
//! spawn-and-await, reading files from the page cache, and what each shard did. (The criterion benches in `benches/` are the
//! careful version, against glommio, tokio and crossbeam.)

use std::time::{Duration, Instant};

use shardpipe::{Runtime, channel};

const ITEMS_PER_SHARD: u64 = 5_000_000;
const PINGS: u32 = 20_000;
const SPAWNS: u32 = 200_000;
/// Timed passes of the read measure (after one untimed pass).
const READ_PASSES: u32 = 5;

pub fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder().build()?;
    let n = rt.shard_count();
    println!("shardpipe bench: {n} shards");
    for info in rt.shard_infos() {
        println!(
            "  shard-{}: cpu {:?}, ring {}, peer wake by {}",
            info.id,
            info.cpu,
            info.ring_mode,
            if info.msg_ring { "MSG_RING" } else { "eventfd" }
        );
    }

    // 1. Streaming hand-off: every shard sends its items to the next shard round the ring.
    let peers = channel::mesh::<u64>(n, 1024);
    let start = Instant::now();
    let handles = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            rt.run_on(i, move || async move {
                let (tx, rx) = peer.connect();
                let to = (i + 1) % tx.peers();
                let send = shardpipe::spawn_local(async move {
                    for v in 0..ITEMS_PER_SHARD {
                        tx.send_to(to, v).await.expect("peer receives until the end");
                    }
                    // dropping tx closes this shard's rings
                });
                let mut sum = 0u64;
                let mut count = 0u64;
                while let Some((_, v)) = rx.recv().await {
                    sum = sum.wrapping_add(v);
                    count += 1;
                }
                send.await.expect("sender task");
                (count, sum)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut total = 0;
    for h in handles {
        let (count, sum) = h.join()?;
        if count != ITEMS_PER_SHARD || sum != ITEMS_PER_SHARD * (ITEMS_PER_SHARD - 1) / 2 {
            return Err(format!("checksum mismatch: got {count} items summing to {sum}").into());
        }
        total += count;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "handoff: {total} items across {n} shards in {secs:.3} s = {:.1} M items/s ({:.1} ns/item per link), checksums ok",
        total as f64 / secs / 1e6,
        secs * 1e9 / ITEMS_PER_SHARD as f64
    );

    // 2. Ping-pong between shard 0 and the last shard: the round trip of one item.
    let last = n - 1;
    let (ping_tx, ping_rx) = channel::bounded::<u32>(2);
    let (pong_tx, pong_rx) = channel::bounded::<u32>(2);
    let echo = rt.run_on(last, move || async move {
        let (rx, tx) = (ping_rx.connect(), pong_tx.connect());
        while let Some(v) = rx.recv().await {
            tx.send(v).await.expect("pinger waits for the pong");
            tx.flush();
        }
    })?;
    let pinger = rt.run_on(0, move || async move {
        let (tx, rx) = (ping_tx.connect(), pong_rx.connect());
        let t = Instant::now();
        for i in 0..PINGS {
            tx.send(i).await.expect("echo runs");
            tx.flush();
            assert_eq!(rx.recv().await, Some(i));
        }
        t.elapsed()
    })?;
    let rtt: Duration = pinger.join()?;
    echo.join()?;
    println!(
        "ping-pong shard 0 <-> shard {last}: {:.0} ns per round trip ({PINGS} trips)",
        rtt.as_nanos() as f64 / PINGS as f64
    );

    // 3. Spawn one trivial task and await it, on shard 0.
    let spawn = rt.run_on(0, || async {
        let t = Instant::now();
        for i in 0..SPAWNS {
            assert_eq!(shardpipe::spawn_local(async move { i }).await.expect("task"), i);
        }
        t.elapsed()
    })?;
    let spawn = spawn.join()?;
    println!("spawn + await: {:.0} ns per task ({SPAWNS} tasks)", spawn.as_nanos() as f64 / f64::from(SPAWNS));

    // 4. Read 256 files of 128 KiB from the page cache: every shard (2 readers each, buffers
    //    reused) against std on one thread (one buffer reused). One untimed pass of each first
    //    (fresh buffers fault their pages in, parked shards wake), then the best of READ_PASSES,
    //    alternating, so a noisy moment slows both.
    let files = read_files()?;
    let (mut std_best, mut ours_best, mut bytes) = (Duration::MAX, Duration::MAX, 0);
    for pass in 0..=READ_PASSES {
        let std_time = read_on_one_thread(&files)?;
        let (ours, b) = read_on_every_shard(&rt, &files)?;
        if pass > 0 {
            (std_best, ours_best, bytes) = (std_best.min(std_time), ours_best.min(ours), b);
        }
    }
    println!(
        "read {} files of 128 KiB ({} MiB), best of {READ_PASSES}: all shards {:.2} ms, std on one thread {:.2} ms = {:.2}x",
        files.len(),
        bytes >> 20,
        ours_best.as_secs_f64() * 1e3,
        std_best.as_secs_f64() * 1e3,
        ours_best.as_secs_f64() / std_best.as_secs_f64()
    );

    let reports = rt.shutdown();
    print_shard_reports(reports);
    Ok(())
}

/// `files` read with `std` on this thread, one buffer reused (a fresh 128 KiB buffer per file
/// faults its pages in every time, which would flatter the shards).
fn read_on_one_thread(files: &[std::path::PathBuf]) -> std::io::Result<Duration> {
    use std::io::Read as _;
    let mut buf = Vec::with_capacity(128 * 1024);
    let t = Instant::now();
    for f in files {
        buf.clear();
        std::fs::File::open(f)?.read_to_end(&mut buf)?;
        std::hint::black_box(&buf);
    }
    Ok(t.elapsed())
}

/// `files` dealt over every shard, two readers per shard; the time and the bytes read.
fn read_on_every_shard(
    rt: &Runtime,
    files: &[std::path::PathBuf],
) -> Result<(Duration, usize), Box<dyn std::error::Error>> {
    let n = rt.shard_count();
    let t = Instant::now();
    let readers = (0..n)
        .map(|s| {
            let mine: Vec<_> = files.iter().skip(s).step_by(n).cloned().collect();
            rt.run_on(s, move || async move {
                let half = mine.len().div_ceil(2);
                let (a, b) = mine.split_at(half);
                let (a, b) = (a.to_vec(), b.to_vec());
                let other = shardpipe::spawn_local(read_all(b));
                read_all(a).await + other.await.unwrap_or(0)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut bytes = 0;
    for r in readers {
        bytes += r.join()?;
    }
    Ok((t.elapsed(), bytes))
}

/// Reads every file through the shard's ring, reusing one buffer; returns the bytes read.
async fn read_all(files: Vec<std::path::PathBuf>) -> usize {
    let mut buf = Vec::new();
    let mut total = 0;
    for f in files {
        let (res, b) = shardpipe::io::read_into(&f, buf).await;
        if res.is_ok() {
            total += b.len();
        }
        buf = b;
    }
    total
}

/// 256 files of 128 KiB in the temporary directory, made once and read once (into the page cache).
fn read_files() -> std::io::Result<Vec<std::path::PathBuf>> {
    let dir = std::env::temp_dir().join("shardpipe-bench-read");
    std::fs::create_dir_all(&dir)?;
    let data = vec![0xa5u8; 128 * 1024];
    (0..256)
        .map(|i| {
            let p = dir.join(format!("f{i:03}"));
            if std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0) != data.len() as u64 {
                std::fs::write(&p, &data)?;
            }
            std::hint::black_box(std::fs::read(&p)?);
            Ok(p)
        })
        .collect()
}

fn print_shard_reports(reports: Vec<shardpipe::ShardReport>) {
    for r in reports {
        println!(
            "  shard-{}: {} task polls, busy {:.0} ms, idle {:.0} ms, {} parks, {} MSG_RING wakes sent",
            r.id,
            r.tasks_run,
            r.busy.as_secs_f64() * 1e3,
            r.idle.as_secs_f64() * 1e3,
            r.driver.parks,
            r.driver.msg_ring_wakes
        );
    }
}
