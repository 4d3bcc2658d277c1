//! Choosing shard count, CPUs and loop settings, then starting the shards.

use std::time::Duration;

use super::Runtime;
use super::shard::ShardConfig;
use crate::driver::{DriverChoice, UringUnavailable};

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Zero shards were asked for.
    #[error(
        "a runtime needs at least one shard; ask for 1 or more (or leave the count unset to use every allowed CPU)"
    )]
    ZeroShards,
    /// More shards than CPUs, without opting into oversubscription.
    #[error(
        "{asked} shards asked for but the process may run on only {cpus} CPUs; ask for at most {cpus}, or call .oversubscribe(true) to share CPUs"
    )]
    TooManyShards {
        /// Shards asked for.
        asked: usize,
        /// CPUs in the affinity mask (or the explicit list).
        cpus: usize,
    },
    /// An explicit CPU list named a CPU outside the process's affinity mask.
    #[error("CPU {cpu} is not in this process's affinity mask (allowed: {allowed:?}); pick CPUs from that list")]
    CpuNotAllowed {
        /// The CPU named.
        cpu: usize,
        /// The CPUs this process may use.
        allowed: Vec<usize>,
    },
    /// An explicit CPU list named the same CPU twice.
    #[error("CPU {0} appears twice in the CPU list; name each CPU once (use .oversubscribe(true) to share CPUs)")]
    DuplicateCpu(usize),
    /// The CPU list was empty.
    #[error("the CPU list is empty; name at least one CPU")]
    EmptyCpuList,
    /// The affinity mask could not be read.
    #[error("could not read this process's CPU affinity mask (sched_getaffinity failed)")]
    AffinityUnreadable,
    /// Pinning a shard thread failed.
    #[error("could not pin shard {shard} to CPU {cpu}; check the process's affinity mask (taskset/cgroup cpuset)")]
    PinFailed {
        /// Shard index.
        shard: usize,
        /// CPU it should have run on.
        cpu: usize,
    },
    /// io_uring could not be set up (and the driver was `uring`, or the fallback was refused).
    #[error(transparent)]
    Uring(#[from] UringUnavailable),
    /// `SHARDPIPE_DRIVER` holds something other than `auto`, `uring` or `fallback`.
    #[error("{0}")]
    DriverEnv(String),
    /// Creating a thread or an eventfd failed.
    #[error("could not start a shard: {0}")]
    Io(#[from] std::io::Error),
}

/// Configures and starts a [`Runtime`].
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) shards: Option<usize>,
    pub(crate) cpus: Option<Vec<usize>>,
    pub(crate) oversubscribe: bool,
    pub(crate) pin: bool,
    pub(crate) spin_set: bool,
    pub(crate) driver: Option<DriverChoice>,
    pub(crate) config: ShardConfig,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            shards: None,
            cpus: None,
            oversubscribe: false,
            pin: true,
            spin_set: false,
            driver: None,
            config: ShardConfig {
                // Waking an idle vCPU here costs ~20-25 µs one way: spin longer than that.
                spin_before_park: Duration::from_micros(50),
                ring_entries: 256,
                tasks_per_turn: 128,
                task_budget: 128,
                eventfd_wake: false,
                driver: DriverChoice::Auto,
                trace: None,
            },
        }
    }
}

impl Builder {
    /// A builder with the defaults: one shard per allowed CPU, pinned, 50 µs spin before park.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of shards (default: one per CPU in the affinity mask, or per CPU in [`Builder::cpus`]).
    pub fn shards(&mut self, n: usize) -> &mut Self {
        self.shards = Some(n);
        self
    }

    /// Exact CPUs to use, shard i on `cpus[i % len]`. Each must be in the affinity mask.
    pub fn cpus(&mut self, cpus: impl IntoIterator<Item = usize>) -> &mut Self {
        self.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// Allow more shards than CPUs (shards then share CPUs round-robin).
    pub fn oversubscribe(&mut self, yes: bool) -> &mut Self {
        self.oversubscribe = yes;
        self
    }

    /// Pin each shard to its CPU (default true). Unpinned shards still get one thread each.
    pub fn pin(&mut self, yes: bool) -> &mut Self {
        self.pin = yes;
        self
    }

    /// How long an idle shard spins before it arms its doorbell and blocks (default 50 µs, or
    /// zero when shards outnumber CPUs: a spinning shard would hold the CPU its peer needs).
    /// Zero also stops channel ends from spinning before they park their task.
    pub fn spin_before_park(&mut self, d: Duration) -> &mut Self {
        self.spin_set = true;
        self.config.spin_before_park = d;
        self
    }

    /// Submission-queue entries per ring (default 256; the completion queue gets 4×).
    pub fn ring_entries(&mut self, n: u32) -> &mut Self {
        self.config.ring_entries = n.max(8);
        self
    }

    /// Task polls per loop turn before the shard reaps I/O and timers again (default 128).
    pub fn tasks_per_turn(&mut self, n: u32) -> &mut Self {
        self.config.tasks_per_turn = n.max(1);
        self
    }

    /// Ready channel operations one task may do per poll before it must yield (default 128).
    /// Channel ends charge it a batch at a time and never batch more than this many items.
    pub fn task_budget(&mut self, n: u32) -> &mut Self {
        self.config.task_budget = n.max(1);
        self
    }

    /// Records each shard's timeline (task turns, idle periods, wakes sent), in ns since
    /// `epoch`; [`ShardReport::trace`](crate::ShardReport::trace) hands it back at shutdown.
    pub fn trace(&mut self, epoch: std::time::Instant) -> &mut Self {
        self.config.trace = Some(epoch);
        self
    }

    /// Wake sleeping peers by eventfd writes even where the kernel has `IORING_OP_MSG_RING`
    /// (default false). The eventfd path is what kernels before 5.18 get; this forces it, to test
    /// it or to compare the two.
    pub fn eventfd_wake(&mut self, yes: bool) -> &mut Self {
        self.config.eventfd_wake = yes;
        self
    }

    /// io_uring or the fallback driver (default: what `SHARDPIPE_DRIVER` says — `auto`, `uring`
    /// or `fallback` — and `auto` when it is unset: io_uring where it can be set up, else the
    /// fallback, with one line on stderr naming the cause).
    pub fn driver(&mut self, choice: DriverChoice) -> &mut Self {
        self.driver = Some(choice);
        self
    }

    /// Checks the settings and returns the CPU for each shard.
    pub(crate) fn plan(&self) -> Result<Vec<usize>, BuildError> {
        // Read once, before anything is pinned: get_core_ids reads the calling thread's mask.
        let allowed: Vec<usize> =
            core_affinity::get_core_ids().ok_or(BuildError::AffinityUnreadable)?.into_iter().map(|c| c.id).collect();
        let cpus = match &self.cpus {
            None => allowed.clone(),
            Some(list) => {
                if list.is_empty() {
                    return Err(BuildError::EmptyCpuList);
                }
                for (i, &cpu) in list.iter().enumerate() {
                    if !allowed.contains(&cpu) {
                        return Err(BuildError::CpuNotAllowed { cpu, allowed: allowed.clone() });
                    }
                    if list[..i].contains(&cpu) {
                        return Err(BuildError::DuplicateCpu(cpu));
                    }
                }
                list.clone()
            }
        };
        if cpus.is_empty() {
            return Err(BuildError::AffinityUnreadable);
        }
        let n = self.shards.unwrap_or(cpus.len());
        if n == 0 {
            return Err(BuildError::ZeroShards);
        }
        if n > cpus.len() && !self.oversubscribe {
            return Err(BuildError::TooManyShards { asked: n, cpus: cpus.len() });
        }
        Ok((0..n).map(|i| cpus[i % cpus.len()]).collect())
    }

    /// Starts the shards and waits until every ring is up.
    pub fn build(&self) -> Result<Runtime, BuildError> {
        Runtime::start(self)
    }
}
