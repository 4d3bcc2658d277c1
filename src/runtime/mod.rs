//! The shard runtime: N pinned threads, each an executor plus an io_uring reactor plus timers.
//!
//! [`Runtime`] starts the shards and is the handle other threads use to put work on them:
//! [`Runtime::spawn_on`] (a `Send` future), [`Runtime::run_on`] (a closure that builds a `!Send`
//! future on the shard), [`Runtime::run_on_all`]. Inside a shard, [`spawn_local`] starts `!Send`
//! tasks. [`Runtime::shutdown`] (or drop) stops new work, lets in-flight tasks finish, and joins.

pub(crate) mod block_on;
mod builder;
pub(crate) mod context;
mod memory;
pub(crate) mod shard;
mod supervised;
mod task;
pub mod time;
mod usage;
pub(crate) mod wake_relay;

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle as ThreadHandle;

pub use block_on::block_on;
pub use builder::{BuildError, Builder};
pub use context::current_shard;
pub use memory::{
    MemorySetting, MemorySettingError, RETAINED_MMAP_THRESHOLD, RETAINED_TRIM_THRESHOLD, retain_freed_memory,
};
use shard::ShardShared;
pub use shard::{ShardInfo, ShardReport};
pub(crate) use task::panic_message as task_panic_message;
pub(crate) use task::poll_budget;
pub use task::{JoinError, JoinHandle, SpawnError, spawn_local, try_spawn_local, yield_now};
pub use usage::ShardUsage;

use crate::driver::{DriverChoice, RingMode};

/// A set of running shards. Dropping it shuts them down (see [`Runtime::shutdown`]).
#[derive(Debug)]
pub struct Runtime {
    shards: Vec<Arc<ShardShared>>,
    threads: Vec<ThreadHandle<ShardReport>>,
    infos: Vec<ShardInfo>,
}

impl Runtime {
    /// A builder; see [`Builder`] for the settings and defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Starts one pinned shard per CPU this process may use.
    pub fn new() -> Result<Self, BuildError> {
        Builder::new().build()
    }

    fn start(b: &Builder) -> Result<Self, BuildError> {
        let plan = b.plan()?;
        let mut config = b.config.clone();
        config.driver = match b.driver {
            Some(choice) => choice,
            None => DriverChoice::from_env().map_err(BuildError::DriverEnv)?,
        };
        let shares_cpus = (1..plan.len()).any(|i| plan[..i].contains(&plan[i]));
        if shares_cpus && !b.spin_set {
            config.spin_before_park = std::time::Duration::ZERO;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let mut rt = Runtime { shards: Vec::new(), threads: Vec::new(), infos: Vec::new() };
        for (i, &cpu) in plan.iter().enumerate() {
            let shared = Arc::new(ShardShared::new(i)?);
            let cfg = config.clone();
            let tx = tx.clone();
            let pin = b.pin;
            let shared2 = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("shard-{i}"))
                .spawn(move || shard::run(shared2, cfg, cpu, pin, tx));
            match spawned {
                Ok(h) => {
                    rt.shards.push(shared);
                    rt.threads.push(h);
                }
                Err(e) => {
                    rt.shutdown_inner();
                    return Err(BuildError::Io(e));
                }
            }
        }
        drop(tx);
        let mut first_err = None;
        for _ in 0..plan.len() {
            match rx.recv() {
                Ok(Ok(info)) => rt.infos.push(info),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => break,
            }
        }
        if let Some(e) = first_err {
            rt.shutdown_inner();
            return Err(e);
        }
        rt.infos.sort_by_key(|i| i.id);
        Ok(rt)
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// What each shard reported at start (CPU, ring mode, wake mechanism).
    pub fn shard_infos(&self) -> &[ShardInfo] {
        &self.infos
    }

    /// Each shard's busy and idle time and task polls since it started, read while it runs
    /// (the idle stretch in progress included; task polls as of the shard's last loop turn).
    /// Two readings give a stretch's share: [`ShardUsage::since`].
    pub fn shard_usage(&self) -> Vec<ShardUsage> {
        (self.usage_reader())()
    }

    /// [`Runtime::shard_usage`] for a thread that does not hold the runtime (a report thread).
    pub(crate) fn usage_reader(&self) -> impl Fn() -> Vec<ShardUsage> + Send + 'static {
        let shards = self.shards.clone();
        move || shards.iter().map(|s| s.usage.read(s.id)).collect()
    }

    /// Whether the calling thread is one of this runtime's shards.
    pub(crate) fn is_current_shard(&self) -> bool {
        context::with(|cx| self.shards.iter().any(|s| Arc::ptr_eq(s, &cx.shard))).unwrap_or(false)
    }

    /// The ring setup flags shard 0 ended up with (every shard probes the same kernel).
    pub fn ring_mode(&self) -> RingMode {
        self.infos[0].ring_mode
    }

    /// Runs `spawn` for shard `shard` inside the remote-submission bracket that shutdown waits on.
    fn submit<R>(&self, shard: usize, spawn: impl FnOnce(&Arc<ShardShared>) -> R) -> Result<R, SpawnError> {
        let home = self.shards.get(shard).ok_or(SpawnError::NoSuchShard { shard, count: self.shards.len() })?;
        if !home.begin_remote() {
            return Err(SpawnError::ShuttingDown);
        }
        let out = spawn(home);
        home.end_remote();
        Ok(out)
    }

    /// Runs a `Send` future on shard `shard`; the handle yields its output.
    pub fn spawn_on<F>(&self, shard: usize, fut: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.submit(shard, |home| task::spawn_remote(home, fut))
    }

    /// Runs `f` on shard `shard` and drives the (possibly `!Send`) future it returns there.
    pub fn run_on<F, Fut>(&self, shard: usize, f: F) -> Result<JoinHandle<Fut::Output>, SpawnError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        self.submit(shard, |home| task::spawn_pinned_to(home, f))
    }

    /// Runs `f(shard_index)` on every shard; one handle per shard, in shard order.
    pub fn run_on_all<F, Fut>(&self, f: F) -> Result<Vec<JoinHandle<Fut::Output>>, SpawnError>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let f = Arc::new(f);
        (0..self.shards.len())
            .map(|i| {
                let f = f.clone();
                self.run_on(i, move || f(i))
            })
            .collect()
    }

    /// Runs `fut` on shard `shard` and blocks the calling thread until it is done.
    pub fn block_on<F>(&self, shard: usize, fut: F) -> Result<F::Output, RunError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Ok(self.spawn_on(shard, fut)?.join()?)
    }

    /// Stops accepting work, lets every in-flight task finish, joins the shard threads, and
    /// returns what each shard did. Tasks that never finish keep their shard running: stop them
    /// first (close their channels, drop their inputs).
    pub fn shutdown(mut self) -> Vec<ShardReport> {
        self.shutdown_inner()
    }

    /// A waker for the calling (plain) thread that relays wakes from other CPUs through this
    /// runtime's shard on the thread's CPU (see [`wake_relay`]).
    pub(crate) fn same_cpu_waker(&self) -> Arc<wake_relay::SameCpuWaker> {
        wake_relay::SameCpuWaker::current(self.shards.clone())
    }

    fn shutdown_inner(&mut self) -> Vec<ShardReport> {
        for s in &self.shards {
            s.close();
        }
        self.threads.drain(..).map(|t| t.join().unwrap_or_else(|_| ShardReport::empty(usize::MAX))).collect()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

/// Error of [`Runtime::block_on`]: the task could not be spawned, or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Spawning failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The task panicked or was cancelled.
    #[error(transparent)]
    Join(#[from] JoinError),
}

impl ShardReport {
    /// Its busy and idle time and task polls.
    pub fn usage(&self) -> ShardUsage {
        ShardUsage { id: self.id, busy: self.busy, idle: self.idle, tasks_run: self.tasks_run }
    }

    pub(crate) fn empty(id: usize) -> Self {
        ShardReport {
            id,
            tasks_run: 0,
            busy: std::time::Duration::ZERO,
            idle: std::time::Duration::ZERO,
            driver: Default::default(),
            trace: None,
        }
    }
}
