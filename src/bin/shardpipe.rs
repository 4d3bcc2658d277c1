//! `shardpipe`: for now, a demo that starts one shard per CPU, streams items around the shards
//! through the cross-shard mesh, measures a ping-pong, then runs the same pipeline on one loop
//! and on every shard, and prints what it measured.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shardpipe::pipeline::{Placement, source};
use shardpipe::{Runtime, channel};

const ITEMS_PER_SHARD: u64 = 5_000_000;
const PINGS: u32 = 20_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardpipe: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder().build()?;
    let n = rt.shard_count();
    println!("shardpipe demo: {n} shards");
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

    let reports = rt.shutdown();
    print_shard_reports(reports);
    compare_pipelines()
}

/// 3. The same pipeline on one loop (SPDL's architecture) and on every shard, alternating runs.
fn compare_pipelines() -> Result<(), Box<dyn std::error::Error>> {
    const ITEMS: u64 = 1_000_000;
    const RUNS: usize = 3;
    let build = |p: Placement| source(0..ITEMS).pipe(Some).pipe(Some).pipe(Some).aggregate(256).build(p);
    let mut rates = [Vec::new(), Vec::new()];
    let mut last_sharded = None;
    for _ in 0..RUNS {
        for (k, placement) in [Placement::single_loop(), Placement::sharded()].into_iter().enumerate() {
            let mut pipe = build(placement)?;
            let items: usize = pipe.iter().map(|b| b.len()).sum();
            let report = pipe.finish()?;
            if items as u64 != ITEMS || !report.account.balances() {
                return Err(format!("{}: {items} of {ITEMS} items arrived", placement.label()).into());
            }
            rates[k].push(report.items_per_sec());
            if k == 1 {
                last_sharded = Some(report);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (single, sharded) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "pipeline (source -> 3 no-op stages -> batches of 256, {ITEMS} items, median of {RUNS}): \
         single loop {:.2} M items/s, sharded {:.2} M items/s = {:.2}x",
        single / 1e6,
        sharded / 1e6,
        sharded / single
    );
    if let Some(r) = last_sharded {
        print!("{r}");
    }
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
