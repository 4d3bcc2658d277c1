//! Pipelines: SPDL's model (source → stages → sink) on the shards, without the single-loop
//! ceiling.
//!
//! ```text
//!  source (shard 0) ──deal, ring per shard──▶ shard j: stage 1 ─▶ queue ─▶ stage 2 ─▶ … ─▶ ring ──▶ consumer
//!                                             (every shard holds a replica of every stage)
//! ```
//! [`source`] starts a [`PipelineBuilder`]; stages are added with `map`, `pipe`, `pipe_iter`,
//! `pipe_async`, `pipe_blocking`, `aggregate`, `disaggregate`; `build(placement)` starts it on a
//! [`Placement`]: one loop with offload threads (SPDL's architecture) or N pinned shards. The
//! consumer iterates the returned [`Pipeline`]; the [`Report`] accounts for every source item.
//! The guide below is `docs/pipeline.md` (its example is compiled as a doc test).
//!
#![doc = include_str!("../../docs/pipeline.md")]
#![forbid(unsafe_code)]

mod aggregate;
mod build;
mod builder;
mod cancel;
mod consumer;
mod control;
mod envelope;
mod exchange;
mod hook;
mod merge;
mod offload;
mod paths;
mod profile;
mod progress;
mod queue;
mod report;
mod route;
mod source;
mod source_thread;
mod sources;
mod split_source;
mod stage;
mod wiring;

pub use aggregate::{Aggregator, Collect};
pub use build::{PipelineBuildError, Placement};
pub use builder::{Outcome, PipelineBuilder};
pub use consumer::{EpochItems, Items, Pipeline, PipelineFailed, Progress, RecvTimeoutError};
pub use hook::{CallInfo, CallOutcome, HookContext, TaskHook};
pub use merge::{SubPipeline, merge_pipelines, sub_pipeline};
pub use paths::{Path, path};
pub use profile::{Profile, ProfileError, ProfileLevel, StageProfile};
pub use report::{Account, FailureLimitExceeded, Report, ShardUsage, StageFailures, StageReport, StageStats, fmt_ns};
pub use sources::{merge_sources, source, source_epochs, source_indexed};
