//! Shards: builder checks, spawning from any thread, `!Send` tasks, panics, pinning, shutdown.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use shardpipe::{BuildError, JoinError, JoinHandle, Runtime, SpawnError, channel, spawn_local, yield_now};

#[test]
fn zero_shards_is_a_clear_error() {
    let err = Runtime::builder().shards(0).build().unwrap_err();
    assert!(matches!(err, BuildError::ZeroShards), "{err}");
    assert!(err.to_string().contains("at least one shard"));
}

#[test]
fn more_shards_than_cpus_needs_oversubscribe() {
    let cpus = core_affinity::get_core_ids().unwrap().len();
    let err = Runtime::builder().shards(cpus + 1).build().unwrap_err();
    match &err {
        BuildError::TooManyShards { asked, cpus: c } => {
            assert_eq!((*asked, *c), (cpus + 1, cpus));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("oversubscribe"), "the message names the fix: {err}");
    let Some(rt) = common::runtime(|b| {
        b.shards(cpus + 1).oversubscribe(true);
    }) else {
        return;
    };
    assert_eq!(rt.shard_count(), cpus + 1);
}

#[test]
fn cpu_outside_the_mask_is_rejected() {
    let err = Runtime::builder().cpus([100_000]).build().unwrap_err();
    assert!(matches!(err, BuildError::CpuNotAllowed { cpu: 100_000, .. }), "{err}");
    let err = Runtime::builder().cpus([0, 0]).build().unwrap_err();
    assert!(matches!(err, BuildError::DuplicateCpu(0)), "{err}");
    let err = Runtime::builder().cpus([]).build().unwrap_err();
    assert!(matches!(err, BuildError::EmptyCpuList), "{err}");
}

#[test]
fn shards_are_named_and_pinned() {
    let Some(rt) = common::runtime(|_| {}) else { return };
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(rt.shard_count(), allowed.len(), "default: one shard per allowed CPU");
    for (i, info) in rt.shard_infos().iter().enumerate() {
        let (name, cpu, shard) = rt
            .block_on(i, async {
                // Field 39 of /proc/thread-self/stat: the CPU this thread last ran on.
                let cpu = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
                let field =
                    cpu.rsplit(')').next().unwrap().split_whitespace().nth(36).unwrap().parse::<usize>().unwrap();
                (std::thread::current().name().map(str::to_owned), field, shardpipe::current_shard())
            })
            .unwrap();
        assert_eq!(name.as_deref(), Some(format!("shard-{i}").as_str()));
        assert_eq!(Some(cpu), info.cpu, "shard {i} runs on its CPU");
        assert_eq!(shard, Some(i));
    }
    assert_eq!(shardpipe::current_shard(), None, "the test thread is not a shard");
}

#[test]
fn spawn_on_each_shard_and_join() {
    let Some(rt) = common::two_shards() else { return };
    let handles: Vec<_> = (0..100).map(|i| rt.spawn_on(i % 2, async move { i * 2 }).unwrap()).collect();
    let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..100).map(|i| i * 2).sum());
    let err = rt.spawn_on(7, async {}).unwrap_err();
    assert_eq!(err, SpawnError::NoSuchShard { shard: 7, count: 2 });
}

#[test]
fn shard_usage_is_read_live_and_counts_a_busy_task_as_busy() {
    let Some(rt) = common::two_shards() else { return };
    let before = rt.shard_usage();
    assert_eq!(before.iter().map(|u| u.id).collect::<Vec<_>>(), [0, 1]);
    // Shard 0 runs one task that keeps it for 50 ms without yielding; shard 1 has nothing.
    let spin = Duration::from_millis(50);
    rt.spawn_on(0, async move {
        let t = std::time::Instant::now();
        while t.elapsed() < spin {
            std::hint::spin_loop();
        }
    })
    .unwrap()
    .join()
    .unwrap();
    let after = rt.shard_usage();
    let (busy0, idle1) = (after[0].since(&before[0]), after[1].since(&before[1]));
    assert!(busy0.busy >= spin, "the task's time is busy time: {busy0:?}");
    assert!(idle1.idle > idle1.busy, "the shard with nothing to do was idle: {idle1:?}");
    // Later readings never go back.
    let later = rt.shard_usage();
    for (l, a) in later.iter().zip(&after) {
        assert!(l.busy + l.idle >= a.busy + a.idle && l.tasks_run >= a.tasks_run, "{l:?} after {a:?}");
    }
    // The final counters agree with the live ones. (Live task polls are stored once per loop
    // turn, so a reading just after a task ends may not count it yet; the final ones do.)
    let reports = rt.shutdown();
    for (r, l) in reports.iter().zip(&later) {
        let u = r.usage();
        assert!(u.busy + u.idle >= l.busy + l.idle && u.tasks_run >= l.tasks_run, "{u:?} after {l:?}");
    }
    assert!(reports[0].usage().since(&before[0]).tasks_run >= 1, "the spinning task was polled on shard 0");
}

#[test]
fn run_on_drives_not_send_futures() {
    let Some(rt) = common::two_shards() else { return };
    let h = rt
        .run_on(1, || async {
            let counter = Rc::new(Cell::new(0));
            let mut tasks = Vec::new();
            for _ in 0..10 {
                let c = counter.clone();
                tasks.push(spawn_local(async move {
                    yield_now().await;
                    c.set(c.get() + 1);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            counter.get()
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), 10);
    let all = rt.run_on_all(|i| async move { shardpipe::current_shard() == Some(i) }).unwrap();
    assert!(all.into_iter().all(|h| h.join().unwrap()));
}

#[test]
fn a_panicking_task_is_reported_and_the_shard_lives_on() {
    let Some(rt) = common::two_shards() else { return };
    let h = rt.spawn_on(0, async { panic!("boom in a task") }).unwrap();
    match h.join() {
        Err(JoinError::Panicked(msg)) => assert!(msg.contains("boom in a task"), "{msg}"),
        other => panic!("expected a panic report, got {other:?}"),
    }
    // Same shard keeps working, also for local tasks spawned by a panicking parent.
    let h = rt
        .run_on(0, || async {
            let child = spawn_local(async { panic!("child") });
            matches!(child.await, Err(JoinError::Panicked(_)))
        })
        .unwrap();
    assert!(h.join().unwrap());
    assert_eq!(rt.block_on(0, async { 41 + 1 }).unwrap(), 42);
}

#[test]
fn join_on_a_shard_thread_is_refused() {
    let Some(rt) = common::two_shards() else { return };
    let h = rt
        .run_on(0, || async {
            let inner = spawn_local(async { 1 });
            let r = inner.join();
            matches!(r, Err(JoinError::WouldBlockShard))
        })
        .unwrap();
    assert!(h.join().unwrap());
}

#[test]
fn block_on_inside_a_shard_is_refused_not_a_deadlock() {
    let Some(rt) = common::two_shards() else { return };
    let h = rt.run_on(0, || async { shardpipe::runtime::block_on(async { 1 }) }).unwrap();
    match h.join() {
        Err(JoinError::Panicked(msg)) => assert!(msg.contains("use .await inside shard tasks"), "{msg}"),
        other => panic!("expected a clear refusal, got {other:?}"),
    }
}

#[test]
fn spawn_local_off_shard_is_an_error() {
    assert!(matches!(shardpipe::try_spawn_local(async {}), Err(SpawnError::NotOnShard)));
}

#[test]
fn a_busy_task_does_not_starve_others() {
    // One task receives from a channel it keeps full and published, so `recv` is always ready and
    // never parks; only the budget makes it yield so that a second task on the same shard runs and
    // stops it. The spinner gives up after LIMIT rounds, so a missing budget fails the test instead
    // of hanging it.
    const LIMIT: u64 = 10_000_000;
    let Some(rt) = common::runtime(|b| {
        b.shards(1).task_budget(16);
    }) else {
        return;
    };
    let h = rt
        .run_on(0, || async {
            let stop = Rc::new(Cell::new(false));
            let (tx, rx) = channel::bounded::<u32>(64);
            let (tx, rx) = (tx.connect(), rx.connect());
            let s = stop.clone();
            let spinner = spawn_local(async move {
                let mut n = 0u64;
                while !s.get() && n < LIMIT {
                    let _ = tx.try_send(1);
                    tx.flush();
                    if rx.recv().await.is_some() {
                        n += 1;
                    }
                }
                n
            });
            let s = stop.clone();
            let stopper = spawn_local(async move {
                yield_now().await;
                s.set(true);
            });
            stopper.await.unwrap();
            spinner.await.unwrap()
        })
        .unwrap();
    let spins = h.join().unwrap();
    assert!(spins > 0, "the spinner ran");
    assert!(spins < LIMIT, "the stopper must run while the spinner is still going; spins: {spins}");
}

/// On a shard: a task that, 1 ms from now, notes what `count` says then; returns it and the note.
fn note_after_1ms(count: &Rc<Cell<u64>>) -> (JoinHandle<()>, Rc<Cell<Option<u64>>>) {
    let note = Rc::new(Cell::new(None));
    let (c, n) = (count.clone(), note.clone());
    let timer = spawn_local(async move {
        shardpipe::time::sleep(Duration::from_millis(1)).await;
        n.set(Some(c.get()));
    });
    (timer, note)
}

#[test]
fn a_streaming_sender_does_not_starve_timers_on_its_shard() {
    // The ring holds the whole stream, so `send` never finds it full and never parks: only the
    // cooperative budget makes the producer yield. A timer on the same shard must fire while the
    // stream is still going, not after it.
    let Some(rt) = common::two_shards() else { return };
    const N: u64 = 5_000_000;
    let (tx, rx) = channel::bounded::<u64>(N as usize);
    rt.run_on(1, move || async move {
        let rx = rx.connect();
        let mut buf = Vec::with_capacity(1024);
        while rx.recv_many(&mut buf, 1024).await > 0 {
            buf.clear();
        }
    })
    .unwrap();
    let sent_when_timer_fired = rt
        .run_on(0, move || async move {
            let sent = Rc::new(Cell::new(0u64));
            let (timer, fired_at) = note_after_1ms(&sent);
            let tx = tx.connect();
            for i in 0..N {
                tx.send(i).await.unwrap();
                sent.set(i + 1);
            }
            drop(tx);
            timer.await.unwrap();
            fired_at.get()
        })
        .unwrap()
        .join()
        .unwrap();
    let at = sent_when_timer_fired.expect("the timer fired");
    assert!(at < N, "the timer must fire mid-stream; it fired after {at} of {N} items were sent");
}

#[test]
fn long_polls_that_yield_end_the_loop_turn_so_timers_fire_on_time() {
    // Each poll of the busy task burns 200 µs and yields. Before turns were bounded, a yielded task
    // went back into the same turn, and the turn (with the timers) ended only after
    // `tasks_per_turn` (128) such polls; now it ends within ~100 µs of the first yield. A 1 ms
    // timer must fire after about 5 busy polls, far below 128, whatever the machine's speed.
    const MAX_POLLS: u64 = 100_000;
    let Some(rt) = common::runtime(|b| {
        b.shards(1);
    }) else {
        return;
    };
    let polls_when_fired = rt
        .run_on(0, || async {
            let polls = Rc::new(Cell::new(0u64));
            let (timer, fired) = note_after_1ms(&polls);
            let f = fired.clone();
            let busy = spawn_local(async move {
                while f.get().is_none() && polls.get() < MAX_POLLS {
                    let t = std::time::Instant::now();
                    while t.elapsed() < Duration::from_micros(200) {
                        std::hint::spin_loop();
                    }
                    polls.set(polls.get() + 1);
                    yield_now().await;
                }
            });
            timer.await.unwrap();
            busy.await.unwrap();
            fired.get()
        })
        .unwrap()
        .join()
        .unwrap();
    let at = polls_when_fired.expect("the timer fired");
    assert!(at < 64, "the timer waited for {at} busy polls of 200 µs; a turn must end soon after a yield");
}

#[test]
fn shutdown_waits_for_items_in_flight() {
    let Some(rt) = common::two_shards() else { return };
    const N: u64 = 200_000;
    let (tx, rx) = channel::bounded::<u64>(256);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    rt.run_on(0, move || async move {
        let tx = tx.connect();
        for i in 0..N {
            tx.send(i).await.unwrap();
        }
    })
    .unwrap();
    rt.run_on(1, move || async move {
        let rx = rx.connect();
        let (mut n, mut sum) = (0u64, 0u64);
        while let Some(v) = rx.recv().await {
            n += 1;
            sum += v;
            if n % 1000 == 0 {
                shardpipe::time::sleep(Duration::from_micros(1)).await;
            }
        }
        done_tx.send((n, sum)).unwrap();
    })
    .unwrap();
    // Detached handles; shut down while items are still moving.
    let reports = rt.shutdown();
    assert_eq!(reports.len(), 2);
    let (n, sum) = done_rx.recv().unwrap();
    assert_eq!(n, N, "shutdown let the in-flight transfer finish");
    assert_eq!(sum, N * (N - 1) / 2);
}

#[test]
fn dropping_the_runtime_joins_its_threads() {
    for _ in 0..20 {
        let Some(rt) = common::two_shards() else { return };
        rt.spawn_on(1, async { shardpipe::time::sleep(Duration::from_millis(1)).await }).unwrap();
        drop(rt);
    }
}
