//! Waking the consumer thread from the CPU it parked on (`src/runtime/wake_relay.rs`): a shard
//! on another CPU hands the wake to the shard on the consumer's CPU. That shard may be stuck in
//! user code; the wake must still arrive.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use shardpipe::pipeline::{Placement, RecvTimeoutError, source};

/// The consumer parks on shard 0's CPU while shard 0 blocks inside the source iterator, waiting
/// for the consumer's next token; the item's path (stage and sink) runs on shard 1. Every wake
/// from shard 1 is relayed to shard 0, which cannot run it until the consumer answers: without
/// the relaying shard's fallback this deadlocks.
#[test]
fn a_relayed_wake_arrives_while_the_consumers_shard_is_stuck_in_user_code() {
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    if cpus.len() < 2 {
        eprintln!("SKIPPED: needs 2 CPUs to put the consumer on another shard's CPU, found {}", cpus.len());
        return;
    }
    const ROUNDS: u64 = 200;
    let (token_tx, token_rx) = mpsc::channel::<()>();
    let items = (0..ROUNDS).inspect(move |_| {
        let _ = token_rx.recv();
    });
    let b = source(items).map(|x| x).on_shards([1]);
    let Some(mut pipe) = common::start(b, Placement::Sharded { shards: 2 }) else { return };
    // Shard 0 runs on the first CPU of the mask; the consumer (this thread) parks there too.
    assert!(core_affinity::set_for_current(cpus[0]), "pinning the test thread");
    for want in 0..ROUNDS {
        token_tx.send(()).expect("the source is waiting for tokens");
        match pipe.recv_timeout(Duration::from_secs(10)) {
            Ok(got) => assert_eq!(got, want),
            Err(RecvTimeoutError::Timeout) => panic!("item {want}: the consumer was never woken"),
            Err(e) => panic!("item {want}: {e}"),
        }
    }
    drop(token_tx);
    let report = pipe.finish().expect("no failures");
    assert_eq!(report.received, ROUNDS);
    common::assert_balanced(&report);
}
