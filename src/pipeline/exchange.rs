//! Moving items between shard sets: the dealer that spreads one shard's stream over several
//! rings, and the merge that reads several rings as one stream.
//!
//! The source is a dealer (from shard 0 to the first stage's shards); so is every boundary where
//! the next stage runs on a different set of shards (per-stage pinning), and the last stage's
//! hand-off to the consumer. Two policies:
//!
//! - **Balanced** (default): a chunk of [`CHUNK`] items goes to each target in turn, but a
//!   target whose ring is full is skipped (its shard is behind), so load goes where there is
//!   room. The merge reads its rings round-robin.
//! - **Ordered** (every reordering stage is `ordered`): chunks go strictly in turn, each closed
//!   by a `Chunk` marker; every stage keeps order within its shard, and the merge reads ring
//!   `c mod n` up to the marker of chunk `c`, which restores source order exactly.
//!
//! Epoch markers go to every target; a merge passes `Epoch(e)` on only once every ring has
//! delivered it, and reads no ring past its marker before then.

use std::task::{Context, Poll};

use super::envelope::{Envelope, Msg};
use super::stage::StageCx;
use crate::channel::{Receiver, Sender, SharedReceiver, TrySendError};

/// Consecutive items dealt to one target before the next one's turn.
pub(crate) const CHUNK: usize = 32;

/// Spreads a stream over `targets`.
pub(crate) struct Dealer<T: 'static> {
    targets: Vec<Sender<Msg<T>>>,
    ordered: bool,
    /// Count delivered items as the stage's output (the source, the sink); a boundary between
    /// stages only carries them.
    counts_output: bool,
    turn: usize,
    in_chunk: usize,
    /// The target on the dealer's own shard, when it is one of several and the dealer is not
    /// ordered: its turn is skipped while it has more queued than the target after it, so the
    /// dealing shard (which also runs the source) is not handed an equal share on top.
    local: Option<usize>,
}

impl<T: Send + 'static> Dealer<T> {
    pub(crate) fn new(targets: Vec<Sender<Msg<T>>>, ordered: bool, counts_output: bool) -> Self {
        Self { targets, ordered, counts_output, turn: 0, in_chunk: 0, local: None }
    }

    /// Names `targets[index]` as the one on the dealer's own shard (for an unordered dealer over
    /// several targets; otherwise nothing changes).
    pub(crate) fn with_local(mut self, index: usize) -> Self {
        if !self.ordered && self.targets.len() > 1 && index < self.targets.len() {
            self.local = Some(index);
        }
        self
    }

    /// Sends one message on; an item nobody will receive (the pipeline is stopping) is counted
    /// as discarded.
    pub(crate) async fn send(&mut self, msg: Msg<T>, cx: &StageCx) {
        match msg {
            Msg::Item(env) => self.item(env, cx).await,
            // Only a single-target dealer passes chunk markers through (an ordered N → 1 merge
            // downstream needs them); a multi-target dealer makes its own.
            Msg::Chunk => {
                if self.targets.len() == 1 {
                    let _ = self.targets[0].send(Msg::Chunk).await;
                }
            }
            Msg::Epoch(e) => {
                if self.ordered && self.targets.len() > 1 && self.in_chunk > 0 {
                    self.close_chunk().await;
                }
                for t in &self.targets {
                    let _ = t.send(Msg::Epoch(e)).await;
                }
            }
        }
    }

    /// Deals an item to a ring with room without building a future (the common case); hands it
    /// back, as the message [`send`](Self::send) takes, when the caller must wait (every ring is
    /// full, the receiver is gone, or the dealer is ordered).
    #[inline(always)]
    pub(crate) fn try_item(&mut self, env: Envelope<T>, cx: &StageCx) -> Result<(), Msg<T>> {
        let n = self.targets.len();
        if self.ordered && n > 1 {
            return Err(Msg::Item(env));
        }
        let dealt = if n == 1 {
            self.targets[0]
                .try_send(Msg::Item(env))
                .map_err(|(TrySendError::Full(m) | TrySendError::Disconnected(m))| m)
        } else {
            offer(&self.targets, self.turn, Msg::Item(env))
        };
        dealt?;
        if n > 1 && self.fills_chunk(1) {
            self.pass_turn();
        }
        self.delivered(1, cx);
        Ok(())
    }

    /// How many items [`try_run`](Self::try_run) may deal at once: what is left of the current
    /// target's chunk (a run never straddles two targets), 1 for an ordered dealer over several
    /// targets (it deals item by item, closing each chunk with a marker).
    pub(crate) fn run_room(&self) -> usize {
        match self.targets.len() {
            1 => CHUNK,
            _ if self.ordered => 1,
            _ => CHUNK - self.in_chunk,
        }
    }

    /// Deals a run of items (at most [`run_room`](Self::run_room)) to the current target under
    /// one borrow of its ring; true when all went. What did not fit (the ring is full, or its
    /// receiver is gone) stays in `run`, for [`try_item`](Self::try_item) or
    /// [`send`](Self::send) to place one at a time.
    pub(crate) fn try_run(&mut self, run: &mut Vec<Msg<T>>, cx: &StageCx) -> bool {
        if self.ordered && self.targets.len() > 1 {
            return false;
        }
        debug_assert!(run.len() <= self.run_room(), "a run fits the current chunk");
        let before = run.len();
        let all = self.targets[self.turn].try_send_many(run).is_ok();
        let dealt = before - run.len();
        if self.targets.len() > 1 && self.fills_chunk(dealt) {
            self.pass_turn();
        }
        self.delivered(dealt, cx);
        all
    }

    /// Whether delivered items count as the stage's output.
    pub(crate) fn counts_output(&self) -> bool {
        self.counts_output
    }

    /// Publishes everything batched on every target now (rather than at the end of the turn).
    pub(crate) fn flush(&self) {
        self.targets.iter().for_each(Sender::flush);
    }

    async fn item(&mut self, env: Envelope<T>, cx: &StageCx) {
        let n = self.targets.len();
        let outcome = if n == 1 {
            self.targets[0].send(Msg::Item(env)).await
        } else if self.ordered {
            let r = self.targets[self.turn].send(Msg::Item(env)).await;
            if self.fills_chunk(1) {
                self.close_chunk().await;
            }
            r
        } else {
            let r = match offer(&self.targets, self.turn, Msg::Item(env)) {
                Ok(()) => Ok(()),
                Err(msg) => self.targets[self.turn].send(msg).await,
            };
            if self.fills_chunk(1) {
                self.pass_turn();
            }
            r
        };
        match outcome {
            Ok(()) => self.delivered(1, cx),
            Err(e) => {
                if let Msg::Item(env) = e.0 {
                    cx.discard(env.units());
                }
            }
        }
    }

    /// Counts `n` dealt items into the current chunk; true when that fills it.
    fn fills_chunk(&mut self, n: usize) -> bool {
        self.in_chunk += n;
        self.in_chunk == CHUNK
    }

    /// The next target's turn, with a fresh chunk.
    fn pass_turn(&mut self) {
        self.in_chunk = 0;
        let n = self.targets.len();
        self.turn = (self.turn + 1) % n;
        // Join the shorter queue between the own shard and the next: the own shard also runs
        // the source, so under load its queue drains more slowly and it takes fewer chunks;
        // under light load both are short and the turn goes round as usual.
        if Some(self.turn) == self.local {
            let next = (self.turn + 1) % n;
            if self.targets[self.turn].queued() > self.targets[next].queued() {
                self.turn = next;
            }
        }
    }

    /// `n` items reached a ring: the source and the sink count them as their output.
    fn delivered(&self, n: usize, cx: &StageCx) {
        if self.counts_output {
            cx.stats.borrow_mut().emitted += n as u64;
        }
    }

    async fn close_chunk(&mut self) {
        let _ = self.targets[self.turn].send(Msg::Chunk).await;
        self.pass_turn();
    }
}

/// Offers `msg` to the target whose turn it is, then to the others; hands it back if every
/// ring is full.
#[inline(always)]
fn offer<T: Send + 'static>(targets: &[Sender<Msg<T>>], turn: usize, mut msg: Msg<T>) -> Result<(), Msg<T>> {
    let n = targets.len();
    for k in 0..n {
        match targets[(turn + k) % n].try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => msg = m,
        }
    }
    Err(msg)
}

/// A ring the merge can poll without spinning (it has others to look at).
pub(crate) trait PollRing<M> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<M>>;
}

impl<M: Send + 'static> PollRing<M> for Receiver<M> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<M>> {
        self.poll_recv_unbudgeted(cx, false)
    }
}

impl<M: Send> PollRing<M> for SharedReceiver<M> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<M>> {
        self.poll_recv(cx)
    }
}

/// Several rings read as one stream (see the module docs).
pub(crate) struct Merge<R> {
    /// `None` once a ring has ended.
    rings: Vec<Option<R>>,
    /// Parked at an epoch marker: not read until every ring has delivered it.
    parked: Vec<bool>,
    epoch: Option<u64>,
    ordered: bool,
    next: usize,
}

impl<R> Merge<R> {
    pub(crate) fn new(rings: Vec<R>, ordered: bool) -> Self {
        let n = rings.len();
        Self { rings: rings.into_iter().map(Some).collect(), parked: vec![false; n], epoch: None, ordered, next: 0 }
    }

    /// The next message: an item, `Epoch(e)` once every ring delivered it, `None` at the end.
    /// Chunk markers are consumed here.
    pub(crate) fn poll_next<T>(&mut self, cx: &mut Context<'_>) -> Poll<Option<Msg<T>>>
    where
        R: PollRing<Msg<T>>,
    {
        if self.ordered { self.poll_ordered(cx) } else { self.poll_balanced(cx) }
    }

    /// Every open ring is parked at the epoch marker: release them and pass it on.
    fn epoch_complete<T>(&mut self) -> Option<Msg<T>> {
        let open = self.rings.iter().zip(&self.parked).filter(|(r, _)| r.is_some());
        if self.epoch.is_some() && open.clone().all(|(_, &p)| p) {
            self.parked.iter_mut().for_each(|p| *p = false);
            return self.epoch.take().map(Msg::Epoch);
        }
        None
    }

    fn poll_balanced<T>(&mut self, cx: &mut Context<'_>) -> Poll<Option<Msg<T>>>
    where
        R: PollRing<Msg<T>>,
    {
        let n = self.rings.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.parked[i] {
                continue;
            }
            let Some(ring) = &mut self.rings[i] else { continue };
            loop {
                match ring.poll_next(cx) {
                    Poll::Ready(Some(Msg::Item(env))) => {
                        self.next = (i + 1) % n;
                        return Poll::Ready(Some(Msg::Item(env)));
                    }
                    Poll::Ready(Some(Msg::Chunk)) => continue,
                    Poll::Ready(Some(Msg::Epoch(e))) => {
                        self.parked[i] = true;
                        self.epoch = Some(e);
                    }
                    Poll::Ready(None) => self.rings[i] = None,
                    Poll::Pending => {}
                }
                break;
            }
        }
        if let Some(m) = self.epoch_complete() {
            return Poll::Ready(Some(m));
        }
        if self.rings.iter().all(Option::is_none) { Poll::Ready(None) } else { Poll::Pending }
    }

    fn poll_ordered<T>(&mut self, cx: &mut Context<'_>) -> Poll<Option<Msg<T>>>
    where
        R: PollRing<Msg<T>>,
    {
        let n = self.rings.len();
        loop {
            // Gathering an epoch marker from every ring: the expected ring already gave it.
            if self.epoch.is_some() {
                let mut waiting = false;
                for i in 0..n {
                    if self.parked[i] {
                        continue;
                    }
                    let Some(ring) = &mut self.rings[i] else { continue };
                    match ring.poll_next(cx) {
                        Poll::Ready(Some(Msg::Epoch(_))) => self.parked[i] = true,
                        Poll::Ready(Some(_)) => {
                            unreachable!("ordered dealing puts the epoch marker next on every ring")
                        }
                        Poll::Ready(None) => self.rings[i] = None,
                        Poll::Pending => waiting = true,
                    }
                }
                if waiting {
                    return Poll::Pending;
                }
                return Poll::Ready(self.epoch_complete());
            }
            let i = self.next;
            let Some(ring) = &mut self.rings[i] else {
                // The expected ring ended: so did the stream; wait for the others to close.
                for slot in &mut self.rings {
                    if let Some(r) = slot {
                        match r.poll_next(cx) {
                            Poll::Ready(None) => *slot = None,
                            Poll::Ready(Some(_)) => {
                                unreachable!("ordered dealing ends every ring after its last chunk")
                            }
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                }
                return Poll::Ready(None);
            };
            match ring.poll_next(cx) {
                Poll::Ready(Some(Msg::Item(env))) => return Poll::Ready(Some(Msg::Item(env))),
                Poll::Ready(Some(Msg::Chunk)) => self.next = (i + 1) % n,
                Poll::Ready(Some(Msg::Epoch(e))) => {
                    self.parked[i] = true;
                    self.epoch = Some(e);
                }
                Poll::Ready(None) => self.rings[i] = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{SharedSender, bounded};
    use crate::pipeline::envelope::Stamps;
    use std::task::Waker;

    fn item(v: u32) -> Msg<u32> {
        Msg::Item(Envelope { value: v, stamps: Stamps::None })
    }

    type Senders = Vec<crate::channel::Sender<Msg<u32>>>;

    /// Rings whose producers stay connected (off a shard every send publishes at once).
    fn rings(n: usize) -> (Senders, Vec<SharedReceiver<Msg<u32>>>) {
        let (tx, rx): (Vec<SharedSender<Msg<u32>>>, Vec<_>) = (0..n).map(|_| bounded(64)).unzip();
        (tx.into_iter().map(SharedSender::connect).collect(), rx)
    }

    /// Everything the merge yields until it has nothing ready: values, and `u32::MAX` per epoch.
    fn drain(m: &mut Merge<SharedReceiver<Msg<u32>>>) -> (Vec<u32>, bool) {
        let cx = &mut Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            match m.poll_next::<u32>(cx) {
                Poll::Ready(Some(Msg::Item(e))) => out.push(e.value),
                Poll::Ready(Some(Msg::Epoch(_))) => out.push(u32::MAX),
                Poll::Ready(Some(Msg::Chunk)) => unreachable!("chunk markers are consumed"),
                Poll::Ready(None) => return (out, true),
                Poll::Pending => return (out, false),
            }
        }
    }

    /// Queues `n` more items on `d`'s target `i`.
    fn fill(d: &Dealer<u32>, i: usize, n: u32) {
        (0..n).for_each(|v| d.targets[i].try_send(item(v)).unwrap());
    }

    /// The target whose turn follows `from`'s.
    fn turn_after(d: &mut Dealer<u32>, from: usize) -> usize {
        d.turn = from;
        d.pass_turn();
        d.turn
    }

    #[test]
    fn the_own_shard_loses_its_turn_only_while_its_queue_is_the_longer() {
        let (tx, _rx) = rings(3);
        let mut d = Dealer::new(tx, false, true).with_local(0);
        assert_eq!(turn_after(&mut d, 2), 0, "both queues empty: the own shard takes its turn");
        fill(&d, 0, 5);
        fill(&d, 1, 1);
        assert_eq!(turn_after(&mut d, 2), 1, "5 queued at home against 1: the turn goes to the next shard");
        fill(&d, 1, 4);
        assert_eq!(turn_after(&mut d, 2), 0, "5 against 5: the own shard takes its turn");
    }

    #[test]
    fn an_ordered_dealer_keeps_strict_turns() {
        let (tx, _rx) = rings(2);
        let mut d = Dealer::new(tx, true, true).with_local(0);
        fill(&d, 0, 5);
        assert_eq!(turn_after(&mut d, 1), 0, "chunks must go round in order");
    }

    #[test]
    fn an_ordered_merge_follows_the_chunks_whatever_arrives_first() {
        let (tx, rx) = rings(2);
        let mut m = Merge::new(rx, true);
        // Chunk 1 (ring 1) arrives before chunk 0 (ring 0): nothing may pass yet.
        for v in [3, 4] {
            tx[1].try_send(item(v)).unwrap();
        }
        tx[1].try_send(Msg::Chunk).unwrap();
        assert_eq!(drain(&mut m), (vec![], false));
        for v in [1, 2] {
            tx[0].try_send(item(v)).unwrap();
        }
        tx[0].try_send(Msg::Chunk).unwrap();
        tx[0].try_send(item(5)).unwrap();
        assert_eq!(drain(&mut m), (vec![1, 2, 3, 4, 5], false));
        drop(tx);
        assert_eq!(drain(&mut m), (vec![], true));
    }

    #[test]
    fn an_epoch_passes_only_once_every_ring_delivered_it_and_no_ring_is_read_past_it() {
        for ordered in [false, true] {
            let (tx, rx) = rings(2);
            let mut m = Merge::new(rx, ordered);
            tx[0].try_send(item(1)).unwrap();
            tx[0].try_send(Msg::Chunk).unwrap();
            tx[0].try_send(Msg::Epoch(0)).unwrap();
            // Epoch 1's first item: ordered dealing puts it on the next ring in turn (ring 1,
            // after its marker); balanced dealing may put it anywhere, here behind the marker.
            if !ordered {
                tx[0].try_send(item(10)).unwrap();
            }
            let (got, _) = drain(&mut m);
            assert_eq!(got, vec![1], "ordered={ordered}");
            tx[1].try_send(Msg::Epoch(0)).unwrap();
            if ordered {
                tx[1].try_send(item(10)).unwrap();
            }
            let (got, _) = drain(&mut m);
            assert_eq!(got, vec![u32::MAX, 10], "ordered={ordered}");
        }
    }

    #[test]
    fn a_balanced_merge_reads_every_ring_and_ends_when_all_have_ended() {
        let (tx, rx) = rings(3);
        let mut m = Merge::new(rx, false);
        for (i, t) in tx.iter().enumerate() {
            t.try_send(item(i as u32)).unwrap();
        }
        let (mut got, ended) = drain(&mut m);
        got.sort_unstable();
        assert_eq!((got, ended), (vec![0, 1, 2], false));
        drop(tx);
        assert_eq!(drain(&mut m), (vec![], true));
    }
}
