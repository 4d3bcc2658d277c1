//! The tasks that move items without transforming them: the source (pulls passes from the
//! user's iterator and deals them to the first stage's shards) and the dealer that carries a
//! stream across a boundary between shard sets (or to the consumer).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::envelope::{Envelope, Msg, Stamps};
use super::exchange::Dealer;
use super::stage::{BATCH, Inbound, StageCx, charge};
use crate::runtime::task_panic_message;

/// A gap between two items longer than this marks the source as slow (or blocking).
const SLOW_SOURCE_NS: u64 = 20_000;

/// Pulls pass after pass from `make_pass` (until it returns `None` or the pipeline stops), stamps
/// each item, and deals it out; after each pass an epoch marker when `mark_epochs`.
///
/// Dealt items are published in batches, normally at the end of the shard's loop turn. The user's
/// iterator may be slow, or even block (waiting on a socket, a token): then the turn would not
/// end and items would sit unpublished. So the source also publishes when 20 µs have passed
/// since it last did, and before every call into the iterator while items come slower than that
/// (the gap between stamps, read anyway, tells). A fast iterator stays batched.
pub(crate) async fn source_task<I, M>(mut make_pass: M, mark_epochs: bool, mut dealer: Dealer<I::Item>, cx: StageCx)
where
    I: Iterator,
    I::Item: Send + 'static,
    M: FnMut(u64) -> Option<I>,
{
    let mut since_charge = 0usize;
    let (mut last_stamp, mut last_flush) = (0u64, 0u64);
    let mut slow = true;
    for epoch in 0.. {
        dealer.flush();
        let Some(mut items) = pull(&cx, || make_pass(epoch)).flatten() else { return };
        loop {
            if cx.control.source_stopped() {
                return;
            }
            if slow {
                dealer.flush();
            }
            let Some(value) = pull(&cx, || items.next()).flatten() else { break };
            let now = cx.control.now_ns();
            slow = now - last_stamp > SLOW_SOURCE_NS;
            last_stamp = now;
            cx.received(1);
            dealer.send(Msg::Item(Envelope { value, stamps: Stamps::One(now) }), &cx).await;
            if now - last_flush > SLOW_SOURCE_NS {
                dealer.flush();
                last_flush = now;
            }
            since_charge += 1;
            if since_charge == BATCH {
                since_charge = 0;
                charge(BATCH).await;
            }
        }
        if mark_epochs {
            dealer.send(Msg::Epoch(epoch), &cx).await;
        }
    }
}

/// Calls into the user's source code; a panic there ends the source and fails the pipeline
/// (`None`): an iterator that panicked cannot be resumed.
fn pull<R>(cx: &StageCx, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(p) => {
            cx.stats.borrow_mut().failures += 1;
            cx.control.fail_fatal(cx.index, format!("the source panicked: {}", task_panic_message(&*p)));
            None
        }
    }
}

/// Carries this shard's stream across a boundary: to the next stage's shards, or to the
/// consumer. Items bound for a cancelled stage are discarded here.
pub(crate) async fn deal_task<T: Send + 'static>(mut input: Inbound<T>, mut dealer: Dealer<T>, cx: StageCx) {
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        let n = input.recv_many(&mut buf, BATCH).await;
        if n == 0 {
            break;
        }
        let discarding = cx.discarding();
        for msg in buf.drain(..) {
            match msg {
                Msg::Item(env) if discarding => cx.discard(env.units()),
                msg => dealer.send(msg, &cx).await,
            }
        }
        charge(n).await;
    }
}
