//! `task_hook` (SPDL's `task_hook_factory`): user code around every op call, in every placement.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PLACEMENTS, assert_balanced, start};

use shardpipe::pipeline::{CallInfo, CallOutcome, HookContext, TaskHook, source};
use shardpipe::time::sleep;

/// Per stage: hooks made, calls before and after, emitted, filtered, failed, total time.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tally {
    hooks: u64,
    before: u64,
    after: u64,
    emitted: u64,
    filtered: u64,
    failed: u64,
    elapsed: Duration,
}

type Tallies = Arc<Mutex<BTreeMap<String, Tally>>>;

/// Counts on its shard, adds its counts to the shared tallies when dropped (the stage ended).
struct Counting {
    stage: String,
    mine: Tally,
    into: Tallies,
}

impl TaskHook for Counting {
    fn before_call(&mut self) {
        self.mine.before += 1;
    }

    fn after_call(&mut self, call: &CallInfo<'_>) {
        self.mine.after += 1;
        self.mine.elapsed += call.elapsed;
        match call.outcome {
            CallOutcome::Emitted(n) => self.mine.emitted += n as u64,
            CallOutcome::Filtered => self.mine.filtered += 1,
            CallOutcome::Failed => {
                assert!(call.error.is_some_and(|e| e.contains("bad")), "{:?}", call.error);
                self.mine.failed += 1;
            }
        }
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        let mut all = self.into.lock().unwrap();
        let t = all.entry(self.stage.clone()).or_default();
        t.hooks += 1;
        t.before += self.mine.before;
        t.after += self.mine.after;
        t.emitted += self.mine.emitted;
        t.filtered += self.mine.filtered;
        t.failed += self.mine.failed;
        t.elapsed += self.mine.elapsed;
    }
}

#[test]
fn every_op_call_is_seen_once_with_its_outcome_and_hooks_end_with_their_stage() {
    for p in PLACEMENTS {
        let tallies: Tallies = Arc::default();
        let into = tallies.clone();
        let b = source(0..3000u64)
            .map(|x| x + 1)
            .name("inline")
            .pipe_async(|x| async move {
                if x % 500 == 0 {
                    sleep(Duration::from_micros(300)).await;
                }
                (x % 3 != 0).then_some(x)
            })
            .name("async")
            .concurrency(8)
            .pipe_blocking(|x: u64| if x.is_multiple_of(7) { Err(format!("bad {x}")) } else { Ok(x) })
            .name("blocking")
            .pipe_iter(|x| [x, x])
            .name("split")
            .aggregate(10)
            .task_hook(move |cx: &HookContext<'_>| {
                // No hook for `split`: the factory chooses.
                (cx.stage != "split").then(|| Counting {
                    stage: cx.stage.to_owned(),
                    mine: Tally::default(),
                    into: into.clone(),
                })
            });
        let Some(mut pipe) = start(b, p) else { return };
        let items = pipe.iter().map(|b| b.len()).sum::<usize>();
        let r = pipe.finish().expect("no failure limit");
        assert_balanced(&r);
        let all = tallies.lock().unwrap().clone();
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            ["async", "blocking", "inline"],
            "{p:?}: op stages the factory chose"
        );
        let shards = r.shards as u64;
        for (name, t) in &all {
            let stage = &r.stages.iter().find(|s| &s.name == name).unwrap().stats;
            assert_eq!(t.hooks, shards, "{p:?} {name}: one hook per shard, all dropped by finish()");
            assert_eq!((t.before, t.after), (stage.received, stage.received), "{p:?} {name}");
            assert_eq!(
                (t.emitted, t.filtered, t.failed),
                (stage.emitted, stage.filtered, stage.failures),
                "{p:?} {name}"
            );
        }
        assert!(all["async"].elapsed >= Duration::from_micros(300) * 6, "{p:?}: six calls slept 300 µs");
        assert_eq!(all["blocking"].failed, (1..=3000u64).filter(|x| x % 3 != 0 && x % 7 == 0).count() as u64);
        assert_eq!(items as u64, 2 * all["blocking"].emitted);
    }
}

struct Panicking;

impl TaskHook for Panicking {
    fn before_call(&mut self) {
        panic!("hook broke");
    }
}

#[test]
fn a_hook_that_panics_fails_the_call_it_wraps() {
    for p in PLACEMENTS {
        let b = source(0..100u64)
            .pipe_async(|x| async move { Some(x) })
            .name("async")
            .map(|x| x)
            .name("inline")
            .task_hook(|cx: &HookContext<'_>| (cx.stage == "async").then_some(Panicking));
        let Some(mut pipe) = start(b, p) else { return };
        assert_eq!(pipe.iter().count(), 0, "{p:?}");
        let r = pipe.finish().expect("no failure limit");
        assert_balanced(&r);
        let stage = r.stages.iter().find(|s| s.name == "async").unwrap();
        assert_eq!(stage.stats.failures, 100);
        assert!(stage.failure_samples[0].contains("task hook panicked: hook broke"), "{:?}", stage.failure_samples);
    }
}
