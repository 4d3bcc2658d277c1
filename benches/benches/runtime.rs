//! Runtime micro-benchmarks against the peer runtimes. Group and function names are fixed so
//! results compare across versions (see docs/benchmarks.md):
//!
//! - `handoff`: u64 items from core 0 to core 1; one iteration = one item.
//! - `spawn`: spawn one trivial task and await it; one iteration = one task.
//! - `pingpong`: one round trip between two shards that have idled (parked) since the last
//!   message, i.e. the wake path; one iteration = one round trip.
//! - `read`: read 256 files of 128 KiB from the page cache; one iteration = all 256 files.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CORE_A: usize = 0;
const CORE_B: usize = 1;
/// Pause between ping-pong round trips: longer than either runtime's spin, so both park.
const IDLE_BETWEEN_PINGS: Duration = Duration::from_micros(300);

fn pin(core: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
}

// ---------------------------------------------------------------- glommio helpers

type GlommioJob = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A glommio executor pinned to `core` on its own thread, running jobs sent to it.
struct GlommioWorker {
    jobs: Option<mpsc::Sender<GlommioJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GlommioWorker {
    fn new(core: usize) -> Self {
        let (tx, rx) = mpsc::channel::<GlommioJob>();
        let thread = std::thread::spawn(move || {
            let ex =
                glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(core)).make().expect("glommio executor");
            ex.run(async move {
                while let Ok(job) = rx.recv() {
                    job().await;
                }
            });
        });
        Self { jobs: Some(tx), thread: Some(thread) }
    }

    fn run<F, Fut>(&self, f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.jobs.as_ref().unwrap().send(Box::new(move || Box::pin(f()))).unwrap();
    }
}

impl Drop for GlommioWorker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------- plain-thread helper

type Job = Box<dyn FnOnce() + Send>;

/// A plain thread pinned to `core`, running jobs sent to it.
struct ThreadWorker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadWorker {
    fn new(core: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            pin(core);
            while let Ok(job) = rx.recv() {
                job();
            }
        });
        Self { jobs: Some(tx), thread: Some(thread) }
    }

    fn run(&self, f: impl FnOnce() + Send + 'static) {
        self.jobs.as_ref().unwrap().send(Box::new(f)).unwrap();
    }
}

impl Drop for ThreadWorker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn shardpipe_runtime() -> shardpipe::Runtime {
    shardpipe::Runtime::builder().cpus([CORE_A, CORE_B]).build().expect("shardpipe runtime")
}

// ---------------------------------------------------------------- handoff

/// Moves `iters` u64 items from shard 0 to shard 1, one `send` and one `recv` per item.
fn shardpipe_handoff(rt: &shardpipe::Runtime, iters: u64) -> Duration {
    let (tx, rx) = shardpipe::channel::bounded::<u64>(1024);
    let start = Instant::now();
    let p = rt
        .run_on(0, move || async move {
            let tx = tx.connect();
            for i in 0..iters {
                tx.send(i).await.unwrap();
            }
        })
        .unwrap();
    let c = rt
        .run_on(1, move || async move {
            let rx = rx.connect();
            let mut sum = 0u64;
            while let Some(v) = rx.recv().await {
                sum = sum.wrapping_add(v);
            }
            sum
        })
        .unwrap();
    p.join().unwrap();
    black_box(c.join().unwrap());
    start.elapsed()
}

fn handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    g.throughput(Throughput::Elements(1));

    {
        let rt = shardpipe_runtime();
        g.bench_function("shardpipe", |b| b.iter_custom(|iters| shardpipe_handoff(&rt, iters)));
    }

    {
        let (a, bw) = (GlommioWorker::new(CORE_A), GlommioWorker::new(CORE_B));
        g.bench_function("glommio", |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = glommio::channels::shared_channel::new_bounded::<u64>(1024);
                let (done_tx, done_rx) = mpsc::channel();
                let done2 = done_tx.clone();
                let start = Instant::now();
                a.run(move || async move {
                    let tx = tx.connect().await;
                    for i in 0..iters {
                        tx.send(i).await.unwrap();
                    }
                    drop(tx);
                    done_tx.send(0).unwrap();
                });
                bw.run(move || async move {
                    let rx = rx.connect().await;
                    let mut sum = 0u64;
                    while let Some(v) = rx.recv().await {
                        sum = sum.wrapping_add(v);
                    }
                    done2.send(sum).unwrap();
                });
                black_box(done_rx.recv().unwrap());
                black_box(done_rx.recv().unwrap());
                start.elapsed()
            })
        });
    }

    {
        let (a, bw) = (ThreadWorker::new(CORE_A), ThreadWorker::new(CORE_B));
        g.bench_function("crossbeam_array_queue", |b| {
            b.iter_custom(|iters| {
                let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(1024));
                let q2 = q.clone();
                let (done_tx, done_rx) = mpsc::channel();
                let done2 = done_tx.clone();
                let start = Instant::now();
                a.run(move || {
                    for i in 0..iters {
                        let mut v = i;
                        while let Err(back) = q.push(v) {
                            v = back;
                            std::hint::spin_loop();
                        }
                    }
                    done_tx.send(0).unwrap();
                });
                bw.run(move || {
                    let mut sum = 0u64;
                    let mut n = 0;
                    while n < iters {
                        match q2.pop() {
                            Some(v) => {
                                sum = sum.wrapping_add(v);
                                n += 1;
                            }
                            None => std::hint::spin_loop(),
                        }
                    }
                    done2.send(sum).unwrap();
                });
                black_box(done_rx.recv().unwrap());
                black_box(done_rx.recv().unwrap());
                start.elapsed()
            })
        });

        g.bench_function("crossbeam_channel", |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
                let (done_tx, done_rx) = mpsc::channel();
                let done2 = done_tx.clone();
                let start = Instant::now();
                a.run(move || {
                    for i in 0..iters {
                        tx.send(i).unwrap();
                    }
                    done_tx.send(0).unwrap();
                });
                bw.run(move || {
                    let mut sum = 0u64;
                    while let Ok(v) = rx.recv() {
                        sum = sum.wrapping_add(v);
                    }
                    done2.send(sum).unwrap();
                });
                black_box(done_rx.recv().unwrap());
                black_box(done_rx.recv().unwrap());
                start.elapsed()
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- spawn

fn spawn(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn");
    g.throughput(Throughput::Elements(1));

    {
        let rt = shardpipe_runtime();
        g.bench_function("shardpipe", |b| {
            b.iter_custom(|iters| {
                rt.run_on(0, move || async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        black_box(shardpipe::spawn_local(async move { black_box(i) }).await.unwrap());
                    }
                    start.elapsed()
                })
                .unwrap()
                .join()
                .unwrap()
            })
        });
    }

    {
        let w = GlommioWorker::new(CORE_A);
        g.bench_function("glommio", |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = mpsc::channel();
                w.run(move || async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        black_box(glommio::spawn_local(async move { black_box(i) }).await);
                    }
                    tx.send(start.elapsed()).unwrap();
                });
                rx.recv().unwrap()
            })
        });
    }

    {
        // On its own pinned thread: pinning the bench's main thread would shrink the affinity
        // mask the later groups read.
        let w = ThreadWorker::new(CORE_A);
        let (rt_tx, rt_rx) = mpsc::channel();
        w.run(move || rt_tx.send(()).unwrap());
        rt_rx.recv().unwrap();
        let rt = std::sync::Arc::new(tokio::runtime::Builder::new_current_thread().build().unwrap());
        g.bench_function("tokio_current_thread", |b| {
            b.iter_custom(|iters| {
                let (tx, rx) = mpsc::channel();
                let rt = rt.clone();
                w.run(move || {
                    let d = rt.block_on(async move {
                        let start = Instant::now();
                        for i in 0..iters {
                            black_box(tokio::spawn(async move { black_box(i) }).await.unwrap());
                        }
                        start.elapsed()
                    });
                    tx.send(d).unwrap();
                });
                rx.recv().unwrap()
            })
        });
    }
    g.finish();
}

/// Where spawn time goes: the same spawn-and-await loop on bare async-task with a trivial
/// single-threaded executor (a `VecDeque` in a thread-local), and async-task's spawn+run alone.
/// shardpipe's tasks are async-task cells, so these are the floor its `spawn` bench stands on.
fn spawn_floor(c: &mut Criterion) {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    thread_local! {
        static QUEUE: RefCell<VecDeque<async_task::Runnable>> = const { RefCell::new(VecDeque::new()) };
    }
    fn schedule(r: async_task::Runnable) {
        QUEUE.with(|q| q.borrow_mut().push_back(r));
    }
    fn run_all() {
        while let Some(r) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
            r.run();
        }
    }
    let mut g = c.benchmark_group("spawn_floor");
    g.throughput(Throughput::Elements(1));
    let w = ThreadWorker::new(CORE_A);
    g.bench_function("async_task_spawn_await", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = mpsc::channel();
            w.run(move || {
                let (outer, task) = async_task::spawn_local(
                    async move {
                        let start = Instant::now();
                        for i in 0..iters {
                            let (r, t) = async_task::spawn_local(async move { black_box(i) }, schedule);
                            r.schedule();
                            black_box(t.await);
                        }
                        start.elapsed()
                    },
                    schedule,
                );
                outer.schedule();
                run_all();
                tx.send(futures_lite::future::block_on(task)).unwrap();
            });
            rx.recv().unwrap()
        })
    });
    g.bench_function("async_task_spawn_run", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = mpsc::channel();
            w.run(move || {
                let start = Instant::now();
                for i in 0..iters {
                    let (r, t) = async_task::spawn_local(async move { black_box(i) }, schedule);
                    t.detach();
                    r.schedule();
                    run_all();
                }
                tx.send(start.elapsed()).unwrap();
            });
            rx.recv().unwrap()
        })
    });
    g.finish();
}

// ---------------------------------------------------------------- pingpong

fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));

    {
        let rt = shardpipe_runtime();
        g.bench_function("shardpipe", |b| {
            b.iter_custom(|iters| {
                let (ping_tx, ping_rx) = shardpipe::channel::bounded::<u64>(2);
                let (pong_tx, pong_rx) = shardpipe::channel::bounded::<u64>(2);
                rt.run_on(1, move || async move {
                    let (rx, tx) = (ping_rx.connect(), pong_tx.connect());
                    while let Some(v) = rx.recv().await {
                        tx.send(v).await.unwrap();
                        tx.flush();
                    }
                })
                .unwrap();
                rt.run_on(0, move || async move {
                    let (tx, rx) = (ping_tx.connect(), pong_rx.connect());
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        shardpipe::time::sleep(IDLE_BETWEEN_PINGS).await;
                        let t = Instant::now();
                        tx.send(i).await.unwrap();
                        tx.flush();
                        black_box(rx.recv().await.unwrap());
                        total += t.elapsed();
                    }
                    total
                })
                .unwrap()
                .join()
                .unwrap()
            })
        });
    }

    {
        let (a, bw) = (GlommioWorker::new(CORE_A), GlommioWorker::new(CORE_B));
        g.bench_function("glommio", |b| {
            b.iter_custom(|iters| {
                let (ping_tx, ping_rx) = glommio::channels::shared_channel::new_bounded::<u64>(2);
                let (pong_tx, pong_rx) = glommio::channels::shared_channel::new_bounded::<u64>(2);
                let (done_tx, done_rx) = mpsc::channel();
                bw.run(move || async move {
                    let (rx, tx) = (ping_rx.connect().await, pong_tx.connect().await);
                    while let Some(v) = rx.recv().await {
                        tx.send(v).await.unwrap();
                    }
                });
                a.run(move || async move {
                    let (tx, rx) = (ping_tx.connect().await, pong_rx.connect().await);
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        glommio::timer::sleep(IDLE_BETWEEN_PINGS).await;
                        let t = Instant::now();
                        tx.send(i).await.unwrap();
                        black_box(rx.recv().await.unwrap());
                        total += t.elapsed();
                    }
                    done_tx.send(total).unwrap();
                });
                done_rx.recv().unwrap()
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- read

const FILES: usize = 256;
const FILE_SIZE: usize = 128 * 1024;

fn make_files() -> Vec<std::path::PathBuf> {
    let dir = std::env::temp_dir().join("shardpipe-bench-read");
    std::fs::create_dir_all(&dir).unwrap();
    (0..FILES)
        .map(|i| {
            let p = dir.join(format!("f{i:03}"));
            if std::fs::metadata(&p).map(|m| m.len() as usize).ok() != Some(FILE_SIZE) {
                let data: Vec<u8> = (0..FILE_SIZE).map(|j| (i * 7 + j) as u8).collect();
                std::fs::write(&p, data).unwrap();
            }
            let _ = std::fs::read(&p).unwrap(); // into the page cache
            p
        })
        .collect()
}

/// Reads in flight per shard: enough to overlap the ring's per-op latency, few enough that each
/// reader's recycled buffer stays warm.
const READERS_PER_SHARD: usize = 2;

/// Reads `files` on the current shard with [`READERS_PER_SHARD`] reader tasks, each recycling
/// its buffer (the owned-buffer style); returns the total bytes.
async fn read_all_on_shard(files: Vec<std::path::PathBuf>) -> usize {
    let queue = std::rc::Rc::new(std::cell::RefCell::new(files));
    let readers: Vec<_> = (0..READERS_PER_SHARD)
        .map(|_| {
            let queue = queue.clone();
            shardpipe::spawn_local(async move {
                let (mut total, mut buf) = (0, Vec::new());
                loop {
                    let next = queue.borrow_mut().pop();
                    let Some(path) = next else { break };
                    let (res, b) = shardpipe::io::read_into(&path, buf).await;
                    res.unwrap();
                    total += b.len();
                    buf = b;
                }
                total
            })
        })
        .collect();
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap();
    }
    total
}

fn read(c: &mut Criterion) {
    let files = make_files();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes((FILES * FILE_SIZE) as u64));

    {
        let rt = shardpipe_runtime();
        let f = files.clone();
        g.bench_function("shardpipe_one_shard", |b| {
            b.iter(|| {
                let f = f.clone();
                let n = rt.run_on(0, move || read_all_on_shard(f)).unwrap().join().unwrap();
                assert_eq!(n, FILES * FILE_SIZE);
            })
        });
    }
    {
        // Every CPU this process may use (two here; sixteen on a sixteen-core machine).
        let rt = shardpipe::Runtime::builder().build().expect("shardpipe runtime on every CPU");
        let f = files.clone();
        g.bench_function("shardpipe_all_shards", |b| {
            b.iter(|| {
                let shards = rt.shard_count();
                let handles: Vec<_> = (0..shards)
                    .map(|s| {
                        let mine: Vec<_> = f.iter().skip(s).step_by(shards).cloned().collect();
                        rt.run_on(s, move || read_all_on_shard(mine)).unwrap()
                    })
                    .collect();
                let n: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
                assert_eq!(n, FILES * FILE_SIZE);
            })
        });
    }

    {
        let w = ThreadWorker::new(CORE_A);
        let f = files.clone();
        g.bench_function("std_fs_one_thread", |b| {
            b.iter(|| {
                let (tx, rx) = mpsc::channel();
                let f = f.clone();
                w.run(move || {
                    let n: usize = f.iter().map(|p| std::fs::read(p).unwrap().len()).sum();
                    tx.send(n).unwrap();
                });
                assert_eq!(rx.recv().unwrap(), FILES * FILE_SIZE);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, handoff, spawn, spawn_floor, pingpong, read);
criterion_main!(benches);
