//! The two ends of the stage chain on the shards: the source task that deals items out to the
//! shards, and the forwarder that hands each shard's last output to the consumer's ring.
//!
//! Dealing: the source runs on shard 0 and deals chunks of [`CHUNK`] consecutive items to the
//! shards in turn, each through its own ring. A shard whose ring is full is skipped for that
//! item (its stages are behind), so load goes where there is room; only when every ring is full
//! does the source wait, on the shard whose turn it is.

use super::envelope::{Envelope, Stamps};
use super::stage::{BATCH, Inbound, StageCx, charge};
use crate::channel::{Sender, TrySendError};

/// Consecutive items dealt to one shard before the next one's turn.
pub(crate) const CHUNK: usize = 32;

/// Pulls every item from `items`, stamps it and deals it to the shards' first stages.
pub(crate) async fn source_task<I>(items: I, shards: Vec<Sender<Envelope<I::Item>>>, cx: StageCx)
where
    I: Iterator,
    I::Item: Send + 'static,
{
    let n = shards.len();
    let (mut turn, mut dealt) = (0usize, 0usize);
    let mut since_charge = 0usize;
    for value in items {
        if cx.control.source_stopped() {
            break;
        }
        cx.received(1);
        let env = Envelope { value, stamps: Stamps::One(cx.control.now_ns()) };
        match deal(&shards, turn, env) {
            Ok(()) => cx.stats.borrow_mut().emitted += 1,
            Err(env) => match shards[turn].send(env).await {
                Ok(()) => cx.stats.borrow_mut().emitted += 1,
                Err(e) => cx.discard(e.0.units()),
            },
        }
        dealt += 1;
        if dealt == CHUNK {
            dealt = 0;
            turn = (turn + 1) % n;
        }
        since_charge += 1;
        if since_charge == BATCH {
            since_charge = 0;
            charge(BATCH).await;
        }
    }
}

/// Offers `env` to the shard whose turn it is, then to the others; hands it back if every ring
/// is full.
fn deal<T: Send + 'static>(
    shards: &[Sender<Envelope<T>>],
    turn: usize,
    mut env: Envelope<T>,
) -> Result<(), Envelope<T>> {
    let n = shards.len();
    for k in 0..n {
        match shards[(turn + k) % n].try_send(env) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => env = e,
        }
    }
    Err(env)
}

/// Moves this shard's last outputs into the consumer's ring.
pub(crate) async fn forward_to_consumer<T: Send + 'static>(input: Inbound<T>, ring: Sender<Envelope<T>>, cx: StageCx) {
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        let n = input.recv_many(&mut buf, BATCH).await;
        if n == 0 {
            break;
        }
        cx.received(n);
        let discarding = cx.discarding();
        for env in buf.drain(..) {
            if discarding {
                cx.discard(env.units());
                continue;
            }
            match ring.send(env).await {
                Ok(()) => cx.stats.borrow_mut().emitted += 1,
                Err(e) => cx.discard(e.0.units()),
            }
        }
        charge(n).await;
    }
}
