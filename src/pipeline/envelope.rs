//! What travels between stages: the item plus the emission stamps of the source items it holds.
//!
//! The stamps serve two ends. Their count is the number of source items ("units") the envelope
//! accounts for, so the pipeline's account (produced equals delivered, failed, filtered, left
//! over and discarded together) balances in source items through batching and splitting. Their
//! values (ns since the pipeline started) give each source item's end-to-end latency at the
//! consumer.

/// Emission times (ns since the pipeline's start) of the source items an envelope holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Stamps {
    /// Holds no source item of its own (the 2nd..Nth output of a 1 → N op).
    #[default]
    None,
    /// One source item (the common case: no allocation).
    One(u64),
    /// Several: a batch.
    Many(Vec<u64>),
}

impl Stamps {
    /// Source items accounted for.
    pub(crate) fn units(&self) -> u64 {
        match self {
            Stamps::None => 0,
            Stamps::One(_) => 1,
            Stamps::Many(v) => v.len() as u64,
        }
    }

    /// Adds `other`'s stamps to these (aggregation).
    pub(crate) fn absorb(&mut self, other: Stamps) {
        match (&mut *self, other) {
            (_, Stamps::None) => {}
            (Stamps::None, other) => *self = other,
            (Stamps::Many(v), Stamps::One(s)) => v.push(s),
            (Stamps::Many(v), Stamps::Many(w)) => v.extend(w),
            (Stamps::One(first), other) => {
                let mut v = Vec::with_capacity(1 + other.units() as usize);
                v.push(*first);
                other.for_each(|s| v.push(s));
                *self = Stamps::Many(v);
            }
        }
    }

    /// The stamps in `v`, in the form that holds that many.
    pub(crate) fn from_vec(v: Vec<u64>) -> Stamps {
        match v.len() {
            0 => Stamps::None,
            1 => Stamps::One(v[0]),
            _ => Stamps::Many(v),
        }
    }

    /// Splits these stamps over `n` outputs of a 1 → N op: one each when a batch of exactly `n`
    /// splits back into its items, else all on the first output (the others hold none).
    pub(crate) fn split(self, n: usize) -> impl Iterator<Item = Stamps> {
        let mut parts: Vec<Stamps> = match self {
            Stamps::Many(v) if v.len() == n => v.into_iter().map(Stamps::One).collect(),
            other => {
                let mut parts = Vec::with_capacity(n);
                parts.push(other);
                parts
            }
        };
        parts.resize(n, Stamps::None);
        parts.into_iter()
    }

    /// Calls `f` with each stamp.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u64)) {
        match self {
            Stamps::None => {}
            Stamps::One(s) => f(*s),
            Stamps::Many(v) => v.iter().copied().for_each(f),
        }
    }
}

/// An item and the source items it accounts for.
#[derive(Debug)]
pub(crate) struct Envelope<T> {
    pub(crate) value: T,
    pub(crate) stamps: Stamps,
}

impl<T> Envelope<T> {
    pub(crate) fn units(&self) -> u64 {
        self.stamps.units()
    }
}

/// What queues and rings between stages carry: items and the markers that keep epochs (and, in
/// an ordered pipeline, source order) intact across shards.
#[derive(Debug)]
pub(crate) enum Msg<T> {
    Item(Envelope<T>),
    /// The end of one of the source's chunks (ordered pipelines dealt over several shards): the
    /// merge that restores source order moves on to the next shard's ring.
    Chunk,
    /// Every item of epoch `n` came before this.
    Epoch(u64),
}

impl<T> Msg<T> {
    /// The same marker for a stream of another item type.
    ///
    /// # Panics
    /// On an item (callers pass markers only).
    pub(crate) fn recast<U>(self) -> Msg<U> {
        match self {
            Msg::Chunk => Msg::Chunk,
            Msg::Epoch(e) => Msg::Epoch(e),
            Msg::Item(_) => unreachable!("only markers are recast"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbing_counts_every_unit() {
        let mut s = Stamps::None;
        s.absorb(Stamps::One(1));
        assert_eq!(s, Stamps::One(1));
        s.absorb(Stamps::Many(vec![2, 3]));
        s.absorb(Stamps::None);
        assert_eq!(s, Stamps::Many(vec![1, 2, 3]));
        assert_eq!(s.units(), 3);
    }

    #[test]
    fn a_batch_splits_back_one_stamp_each() {
        let parts: Vec<_> = Stamps::Many(vec![5, 6]).split(2).collect();
        assert_eq!(parts, vec![Stamps::One(5), Stamps::One(6)]);
    }

    #[test]
    fn an_uneven_split_keeps_every_unit_on_the_first_output() {
        let parts: Vec<_> = Stamps::One(9).split(3).collect();
        assert_eq!(parts, vec![Stamps::One(9), Stamps::None, Stamps::None]);
        let total: u64 = Stamps::Many(vec![1, 2, 3]).split(2).map(|s| s.units()).sum();
        assert_eq!(total, 3);
    }
}
