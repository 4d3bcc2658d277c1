//! `path_variants`: SPDL's routing of each item down one of several sub-chains ("paths"),
//! whose outputs merge back into one stream.
//!
//! ```text
//!                       ┌─▶ queue ─▶ path 0's stages ──┐
//!  ─▶ router (stage r) ─┤                              ├─▶ merged (completion order) ─▶ next stage
//!                       └─▶ queue ─▶ path 1's stages ──┘
//! ```
//!
//! On every shard of its set the router is one worker that calls the user's function on each
//! item and pushes the item to that path's local queue (a batched router, on each batch, pushes
//! one sub-batch per path: `route.rs`); each path's stages are laid out on the
//! same shards as ordinary stages; the next stage reads every path's output through a merge
//! (the one exchanges use), which passes an epoch marker on once every path has delivered it.
//! Path stages are stages of the pipeline like any other: they have their own names (prefixed
//! `pathK/`), counters, failure limits and queues, and the account balances through them. A
//! failure limit inside a path cancels that path's stages and everything upstream (the router,
//! the source); the other paths and everything downstream drain.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::builder::{NO_STAGE, PipelineBuilder};
use super::envelope::Msg;
use super::profile::router_profiler;
use super::queue::{LocalSender, local_queue};
use super::route::{Chosen, PerBatch, PerItem, Route};
use super::stage::{BATCH, Inbound, StageCx, charge, forward_marker};
use super::wiring::{DEFAULT_BUFFER, Kind, ShardBuild, Wiring};
use crate::runtime::task_panic_message;
use crate::stats::now_ns;

/// One path of [`PipelineBuilder::path_variants`]: the stages an item routed there goes
/// through, added to the builder it is given. Make one with [`path`].
pub struct Path<T, U>(Box<dyn FnOnce(PipelineBuilder<T>) -> PipelineBuilder<U> + Send>);

impl<T, U> std::fmt::Debug for Path<T, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Path")
    }
}

/// A path for [`PipelineBuilder::path_variants`]: `chain` adds the path's stages to the builder
/// it is given (`|p| p.pipe_async(load).map(decode)`; `|p| p` passes items through untouched).
pub fn path<T, U, C>(chain: C) -> Path<T, U>
where
    C: FnOnce(PipelineBuilder<T>) -> PipelineBuilder<U> + Send + 'static,
{
    Path(Box::new(chain))
}

impl<T: Send + 'static> PipelineBuilder<T> {
    /// Routes each item down one of `paths` (SPDL's `path_variants`): `router` returns the
    /// index of the path, and the paths' outputs merge back into one stream, in completion
    /// order. A cache-aware loader, say: hits take a cheap path, misses the full load.
    ///
    /// - The router is a stage (named `path_variants{i}`): an index out of range or a panic is
    ///   a failure of that stage, counted and sampled like any op's.
    /// - Options called right after this apply to the router: `.name(..)`, `.buffer(n)` (each
    ///   path's input queue), `.max_failures(n)`, `.on_shards(..)` (the paths run where their
    ///   router runs, so `on_shards` inside a path is refused at build).
    /// - Every path ends with the same item type; a path may be empty (`path(|p| p)`), nested,
    ///   batch or split items, and fail on its own: the account balances through all of them.
    /// - A pipeline with paths does not keep source order end to end, whatever `ordered` says.
    /// - No path at all is refused at build.
    pub fn path_variants<U, R>(self, router: R, paths: impl IntoIterator<Item = Path<T, U>>) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        R: Fn(&T) -> usize + Send + Sync + 'static,
    {
        self.routed("path_variants", "path", PerItem(router), paths)
    }

    /// [`path_variants`](Self::path_variants) with an async router (SPDL accepts one): `router`
    /// returns a future of the path index (it may await a lookup). It runs as an async stage
    /// named `route_async{i}`, one task per item, then a plain router splits on its result; each
    /// path starts with a `pathK/input` stage that drops the index. Options right after this
    /// apply to the async stage: `.concurrency(n)` (lookups in flight), `.name(..)`,
    /// `.max_failures(n)` (a panic in the router is its failure; an index out of range fails at
    /// the split, `path_variants{i+1}`).
    pub fn path_variants_async<U, R, Fut>(
        self,
        router: R,
        paths: impl IntoIterator<Item = Path<T, U>>,
    ) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        R: Fn(&T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = usize> + 'static,
    {
        self.routed_async(router, PerItem(|t: &(usize, T)| t.0), paths)
    }

    /// An async stage (`route_async{i}`) that pairs each input with what `router`'s future
    /// gives, then a router `route` that splits on it (`path_variants{i+1}`); each path starts
    /// with a stage (`pathK/input`) that drops the answer. Options after this apply to the
    /// async stage.
    fn routed_async<A, U, R, Fut>(
        self,
        router: R,
        route: impl Route<(A, T)>,
        paths: impl IntoIterator<Item = Path<T, U>>,
    ) -> PipelineBuilder<U>
    where
        A: Send + 'static,
        U: Send + 'static,
        R: Fn(&T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = A> + 'static,
    {
        let router = Arc::new(router);
        let answered: PipelineBuilder<(A, T)> = self.tasks("route_async", move |x: T| {
            let router = router.clone();
            // `router` is called inside the task, so a panic in it is a failure like one in its future.
            async move { Ok(Some((router(&x).await, x))) }
        });
        let lookup = answered.last;
        let paths: Vec<Path<(A, T), U>> = paths
            .into_iter()
            .map(|Path(chain)| path(move |p: PipelineBuilder<(A, T)>| chain(p.map(|(_, x)| x).name("input"))))
            .collect();
        let mut b = answered.routed("path_variants", "path", route, paths);
        b.last = lookup;
        b
    }

    /// `path_variants` with the router named `name` and path `k`'s stages prefixed `{prefix}k/`.
    pub(super) fn routed<U, R>(
        self,
        name: &str,
        prefix: &str,
        router: R,
        paths: impl IntoIterator<Item = Path<T, U>>,
    ) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        R: Route<T>,
    {
        let paths: Vec<Path<T, U>> = paths.into_iter().collect();
        let count = paths.len();
        let router = Arc::new(router);
        let router_for_profile = router.clone();
        let mut routed: PipelineBuilder<T> = self.push_stage(name, Kind::Route, DEFAULT_BUFFER, move |w, index| {
            wire_router(w, index, count, router.clone());
        });
        let r = routed.last;
        routed.last().paths = count;
        // Profiled in place (a cheap function): it splits its inputs over the paths.
        routed.profilers[r] = Some(router_profiler::<T, R>(router_for_profile, count));
        let prev = std::mem::replace(&mut routed.wire, Box::new(|_| {}));
        let mut tails = Vec::new();
        let mut laid_out = Vec::with_capacity(count);
        let mut b = routed;
        for (k, Path(chain)) in paths.into_iter().enumerate() {
            let first = b.specs.len();
            b.tails = vec![(r, k)];
            // Options before the path's first stage belong to no stage: `last()` notes them.
            b.last = NO_STAGE;
            let mut out = chain(b);
            for spec in &mut out.specs[first..] {
                spec.name = format!("{prefix}{k}/{}", spec.name);
                spec.in_path = true;
            }
            tails.extend(std::mem::take(&mut out.tails));
            laid_out.push((first..out.specs.len(), std::mem::replace(&mut out.wire, Box::new(|_| {}))));
            b = out.rewire(Box::new(|_| {}));
        }
        b.tails = tails;
        b.last = r;
        b.rewire(Box::new(move |w: &mut Wiring| {
            prev(w);
            let set = w.current.clone();
            let units_in = w.units_per_item;
            let mut units_out = units_in;
            for (k, (stages, wire)) in laid_out.into_iter().enumerate() {
                // A path runs where its router runs (`on_shards` inside it is refused at build).
                for i in stages {
                    w.specs[i].shards = Some(set.clone());
                }
                for &j in &set {
                    w.steps[j].push(Box::new(move |sb: &mut ShardBuild| sb.enter_path(k)));
                }
                w.current = set.clone();
                w.units_per_item = units_in;
                wire(w);
                for &j in &set {
                    w.steps[j].push(Box::new(ShardBuild::leave_path));
                }
                units_out = units_out.max(w.units_per_item);
            }
            for &j in &set {
                w.steps[j].push(Box::new(ShardBuild::join_paths::<U>));
            }
            w.current = set;
            w.units_per_item = units_out;
        }))
    }
}

impl<E: Send + 'static> PipelineBuilder<Vec<E>> {
    /// [`path_variants`](PipelineBuilder::path_variants) on batches (SPDL 0.7's
    /// `batched=True`): `router` sees a whole batch (after `aggregate`, say) and returns one
    /// path index per item, so it can decide for many items in one call (one cache lookup, one
    /// model call). Each path gets the sub-batch of its items, in their order in the batch, and
    /// its stages work on sub-batches; a path with no item of a batch gets nothing from it.
    ///
    /// - The router is a stage named `path_variants{i}`, timed on every call. A panic, a count
    ///   of indices other than the batch's length, or an index out of range fails the whole
    ///   batch (every item in it is counted failed); an empty batch is counted filtered.
    /// - Each sub-batch carries the emission stamps of its own items (when the batch has one per
    ///   item, as `aggregate`'s do), so the account and item latencies stay per source item.
    /// - The options and rules of [`path_variants`](PipelineBuilder::path_variants) apply.
    pub fn path_variants_batched<U, R>(
        self,
        router: R,
        paths: impl IntoIterator<Item = Path<Vec<E>, U>>,
    ) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        R: Fn(&[E]) -> Vec<usize> + Send + Sync + 'static,
    {
        self.routed("path_variants", "path", PerBatch(router), paths)
    }

    /// [`path_variants_batched`](Self::path_variants_batched) with an async router (SPDL
    /// accepts one): `router` returns a future of the path indices. It runs as an async stage
    /// named `route_async{i}`, one task per batch, then a split checks and applies its answer
    /// (`path_variants{i+1}`: a wrong count or an index out of range fails the batch there);
    /// each path starts with a `pathK/input` stage. Options right after this apply to the async
    /// stage, as for [`path_variants_async`](PipelineBuilder::path_variants_async).
    pub fn path_variants_batched_async<U, R, Fut>(
        self,
        router: R,
        paths: impl IntoIterator<Item = Path<Vec<E>, U>>,
    ) -> PipelineBuilder<U>
    where
        U: Send + 'static,
        R: Fn(&[E]) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Vec<usize>> + 'static,
    {
        self.routed_async(move |batch: &Vec<E>| router(batch), Chosen, paths)
    }
}

/// Lays out the router of `count` paths on its shards: one worker per shard, one queue per path.
fn wire_router<T, R>(w: &mut Wiring, index: usize, count: usize, router: Arc<R>)
where
    T: Send + 'static,
    R: Route<T>,
{
    let set = w.enter::<T>(index);
    let buffer = w.specs[index].buffer;
    w.hold(buffer * count + BATCH + 1, set.len());
    for &j in &set {
        let router = router.clone();
        w.steps[j].push(Box::new(move |sb: &mut ShardBuild| {
            let input = sb.take_upstream::<T>();
            let cx = sb.stage(index);
            let (outputs, inputs): (Vec<_>, Vec<_>) = (0..count)
                .map(|_| local_queue::<Msg<T>>(buffer, None))
                .map(|(tx, rx)| (tx, Inbound::Local(rx)))
                .unzip();
            sb.spawn(route_worker(input, outputs, router, cx));
            sb.open_paths(inputs);
        }));
    }
}

/// The router's worker on one shard: each input to the queue(s) of the path(s) `router` names.
async fn route_worker<T, R>(mut input: Inbound<T>, outputs: Vec<LocalSender<Msg<T>>>, router: Arc<R>, cx: StageCx)
where
    T: Send + 'static,
    R: Route<T>,
{
    let mut buf = Vec::with_capacity(BATCH);
    let mut parts = Vec::new();
    let mut calls = 0u64;
    while let Some((n, discarding)) = cx.next_batch(&mut input, &mut buf).await {
        for msg in buf.drain(..) {
            let env = match msg {
                Msg::Item(env) => env,
                marker => {
                    cx.unreceived_marker();
                    // Every path carries the epoch; chunk markers (source order) mean nothing
                    // after a merge in completion order.
                    if let Msg::Epoch(e) = marker {
                        for out in &outputs {
                            forward_marker(out, Msg::Epoch(e)).await;
                        }
                    }
                    continue;
                }
            };
            let units = env.units();
            if discarding {
                cx.discard(units);
                continue;
            }
            let t0 = calls.is_multiple_of(R::TIME_ONE_IN).then(now_ns);
            calls += 1;
            let chosen = catch_unwind(AssertUnwindSafe(|| router.choose(&env.value, outputs.len())));
            if let Some(t0) = t0 {
                cx.record_call_ns(now_ns().saturating_sub(t0));
            }
            match chosen {
                Ok(Ok(choice)) => match R::split(choice, env, &mut parts) {
                    Some((k, env)) => {
                        cx.emit(&outputs[k], env).await;
                    }
                    None if parts.is_empty() => cx.filtered(units),
                    None => {
                        for (k, env) in parts.drain(..) {
                            cx.emit(&outputs[k], env).await;
                        }
                    }
                },
                Ok(Err(message)) => cx.fail(units, message),
                Err(p) => cx.fail(units, format!("router panicked: {}", task_panic_message(&*p))),
            }
        }
        charge(n).await;
    }
}
