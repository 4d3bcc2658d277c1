//! `shardpipe bench`: the runtime's micro-measures on this machine, in seconds — the ring set-up
//! each shard chose, streaming hand-off around the shards (checksummed), a ping-pong round trip,
//! spawn-and-await, and what each shard did. (The criterion benches in `benches/` are the
//! careful version, against glommio, tokio and crossbeam.)

use std::time::{Duration, Instant};

use shardpipe::{Runtime, channel};

const ITEMS_PER_SHARD: u64 = 5_000_000;
const PINGS: u32 = 20_000;
const SPAWNS: u32 = 200_000;

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

    let reports = rt.shutdown();
    print_shard_reports(reports);
    Ok(())
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
