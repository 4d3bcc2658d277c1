//! A full mesh of SPSC channels: one ring for every ordered pair of peers (shards).
//!
//! `mesh(n, cap)` returns one [`MeshPeer`] per peer; move peer i to shard i and `connect()` it
//! there. Peer i's sender to j is the only producer of ring (i → j), and peer j's receiver the
//! only consumer, so every ring stays single-producer/single-consumer.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::Poll;

use super::spsc::{Receiver, SendError, Sender, SharedReceiver, SharedSender, bounded};

/// Peer `id`'s unbound ends: a sender to every peer and a receiver from every peer.
#[derive(Debug)]
pub struct MeshPeer<T> {
    id: usize,
    senders: Vec<SharedSender<T>>,
    receivers: Vec<SharedReceiver<T>>,
}

/// Builds the mesh for `n` peers, each ring holding `capacity` items.
pub fn mesh<T: Send + 'static>(n: usize, capacity: usize) -> Vec<MeshPeer<T>> {
    let mut senders: Vec<Vec<SharedSender<T>>> = (0..n).map(|_| Vec::with_capacity(n)).collect();
    let mut receivers: Vec<Vec<Option<SharedReceiver<T>>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    for (from, row) in senders.iter_mut().enumerate() {
        for recv_row in receivers.iter_mut() {
            let (tx, rx) = bounded(capacity);
            row.push(tx);
            recv_row[from] = Some(rx);
        }
    }
    senders
        .into_iter()
        .zip(receivers)
        .enumerate()
        .map(|(id, (s, r))| MeshPeer {
            id,
            senders: s,
            receivers: r.into_iter().map(|x| x.expect("every pair has a ring")).collect(),
        })
        .collect()
}

impl<T: Send + 'static> MeshPeer<T> {
    /// This peer's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Binds both halves to the calling thread.
    pub fn connect(self) -> (MeshSender<T>, MeshReceiver<T>) {
        let senders = self.senders.into_iter().map(SharedSender::connect).collect();
        let receivers = self.receivers.into_iter().map(SharedReceiver::connect).collect();
        (MeshSender { id: self.id, senders }, MeshReceiver { id: self.id, receivers, next: Cell::new(0) })
    }
}

/// Peer `id`'s senders, one per destination.
#[derive(Debug)]
pub struct MeshSender<T: 'static> {
    id: usize,
    senders: Vec<Sender<T>>,
}

impl<T: 'static> MeshSender<T> {
    /// This peer's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Number of peers.
    pub fn peers(&self) -> usize {
        self.senders.len()
    }

    /// Sends `value` to peer `to`, waiting while that ring is full.
    ///
    /// # Panics
    /// If `to >= peers()`.
    pub async fn send_to(&self, to: usize, value: T) -> Result<(), SendError<T>> {
        self.senders[to].send(value).await
    }

    /// Publishes every batched item on every ring now.
    pub fn flush(&self) {
        self.senders.iter().for_each(Sender::flush);
    }
}

/// Peer `id`'s receivers, one per source, read round-robin.
#[derive(Debug)]
pub struct MeshReceiver<T: 'static> {
    id: usize,
    receivers: Vec<Receiver<T>>,
    next: Cell<usize>,
}

impl<T: 'static> MeshReceiver<T> {
    /// This peer's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Receives the next item from any peer, as `(from, item)`, visiting sources round-robin so
    /// none starves. `None` once every peer's sender is gone and every ring is drained.
    pub async fn recv(&self) -> Option<(usize, T)> {
        poll_fn(|cx| {
            if crate::runtime::poll_budget(cx).is_pending() {
                return Poll::Pending;
            }
            let n = self.receivers.len();
            let start = self.next.get();
            let mut open = 0;
            for k in 0..n {
                let from = (start + k) % n;
                match self.receivers[from].poll_recv_unbudgeted(cx, false) {
                    Poll::Ready(Some(v)) => {
                        self.next.set((from + 1) % n);
                        return Poll::Ready(Some((from, v)));
                    }
                    Poll::Ready(None) => {}
                    Poll::Pending => open += 1,
                }
            }
            if open == 0 { Poll::Ready(None) } else { Poll::Pending }
        })
        .await
    }
}
