//! How a `path_variants` router sends what it receives down the paths: a whole item to one path
//! ([`PerItem`], SPDL's default), or a batch split element by element into one sub-batch per
//! path ([`PerBatch`], SPDL 0.7's `batched=True`).
//!
//! The router stage's worker (`paths.rs`) and its profiler (`profile.rs`) both go through
//! [`Route`], so the two kinds share one worker, one failure policy and one profiler. A batch
//! carries the emission stamps of its source items; a split hands each sub-batch the stamps of
//! its own elements, so the account and the end-to-end latencies stay exact per source item.

use super::envelope::{Envelope, Stamps};
use super::stage::TIME_ONE_IN;

/// Where a router sends one input.
pub(crate) trait Route<T>: Send + Sync + 'static {
    /// What the user's router said about one input.
    type Choice;

    /// Calls timed: one in this many (per-item routers are cheap; a batch call is not).
    const TIME_ONE_IN: u64;

    /// Calls the user's router on `value` (the only user code here: the caller catches its
    /// panics) and checks its answer against `paths`; an error fails the input with that message.
    fn choose(&self, value: &T, paths: usize) -> Result<Self::Choice, String>;

    /// Sends `env` where `choice` says: `Some((path, env))` when it goes whole to one path (no
    /// `Vec` on the per-item path), else `None` with its parts pushed to `out` (none at all:
    /// nothing to route, an empty batch).
    fn split(
        choice: Self::Choice,
        env: Envelope<T>,
        out: &mut Vec<(usize, Envelope<T>)>,
    ) -> Option<(usize, Envelope<T>)>;
}

/// A router called on each item: the item goes to the path it names.
pub(crate) struct PerItem<R>(pub(crate) R);

impl<T, R> Route<T> for PerItem<R>
where
    R: Fn(&T) -> usize + Send + Sync + 'static,
{
    type Choice = usize;
    const TIME_ONE_IN: u64 = TIME_ONE_IN;

    #[inline]
    fn choose(&self, value: &T, paths: usize) -> Result<usize, String> {
        let k = (self.0)(value);
        if k >= paths {
            return Err(format!("the router chose path {k}, but there are {paths} (0 to {})", paths - 1));
        }
        Ok(k)
    }

    #[inline]
    fn split(k: usize, env: Envelope<T>, _: &mut Vec<(usize, Envelope<T>)>) -> Option<(usize, Envelope<T>)> {
        Some((k, env))
    }
}

/// A router called on each batch: it names a path per element, and each path gets the
/// sub-batch of its elements, in their order in the batch.
pub(crate) struct PerBatch<R>(pub(crate) R);

impl<E, R> Route<Vec<E>> for PerBatch<R>
where
    E: 'static,
    R: Fn(&[E]) -> Vec<usize> + Send + Sync + 'static,
{
    type Choice = Vec<usize>;
    const TIME_ONE_IN: u64 = 1;

    fn choose(&self, batch: &Vec<E>, paths: usize) -> Result<Vec<usize>, String> {
        let chosen = (self.0)(batch);
        check(&chosen, batch.len(), paths)?;
        Ok(chosen)
    }

    fn split(
        chosen: Vec<usize>,
        env: Envelope<Vec<E>>,
        out: &mut Vec<(usize, Envelope<Vec<E>>)>,
    ) -> Option<(usize, Envelope<Vec<E>>)> {
        partition(&chosen, env.value, env.stamps, |part| part, out);
        None
    }
}

/// A batch whose path indices an async router already chose (`path_variants_batched_async`):
/// split as [`PerBatch`] does; each part keeps an empty index list (the paths' `input` stage
/// drops it).
pub(crate) struct Chosen;

impl<E: 'static> Route<(Vec<usize>, Vec<E>)> for Chosen {
    type Choice = ();
    const TIME_ONE_IN: u64 = TIME_ONE_IN;

    fn choose(&self, (chosen, batch): &(Vec<usize>, Vec<E>), paths: usize) -> Result<(), String> {
        check(chosen, batch.len(), paths)
    }

    fn split(
        (): (),
        env: Envelope<(Vec<usize>, Vec<E>)>,
        out: &mut Vec<(usize, Envelope<(Vec<usize>, Vec<E>)>)>,
    ) -> Option<(usize, Envelope<(Vec<usize>, Vec<E>)>)> {
        let (chosen, batch) = env.value;
        partition(&chosen, batch, env.stamps, |part| (Vec::new(), part), out);
        None
    }
}

/// A batched router's answer fits the batch: one index per item, each below `paths`.
fn check(chosen: &[usize], items: usize, paths: usize) -> Result<(), String> {
    if chosen.len() != items {
        return Err(format!(
            "the batched router returned {} path indices for a batch of {items} items (it must return one per item)",
            chosen.len()
        ));
    }
    match chosen.iter().enumerate().find(|&(_, &k)| k >= paths) {
        Some((i, k)) => Err(format!(
            "the batched router chose path {k} for item {i} of the batch, but there are {paths} (0 to {})",
            paths - 1
        )),
        None => Ok(()),
    }
}

/// Splits `batch`, which holds `stamps`, by `chosen` (a checked path per element) into one
/// sub-batch per path that has elements, each made into a part by `make`, pushed to `out` in
/// path order.
fn partition<E, P>(
    chosen: &[usize],
    batch: Vec<E>,
    stamps: Stamps,
    make: impl Fn(Vec<E>) -> P,
    out: &mut Vec<(usize, Envelope<P>)>,
) {
    let paths = chosen.iter().max().map_or(0, |&k| k + 1);
    let mut parts: Vec<(Vec<E>, Vec<u64>)> = (0..paths).map(|_| (Vec::new(), Vec::new())).collect();
    let mut whole = match stamps {
        // One stamp per element (a batch from `aggregate`): each sub-batch takes its own.
        Stamps::Many(v) if v.len() == batch.len() => {
            for ((e, &k), s) in batch.into_iter().zip(chosen).zip(v) {
                parts[k].0.push(e);
                parts[k].1.push(s);
            }
            None
        }
        // Otherwise (a custom aggregator's batch) the first sub-batch takes them all.
        whole => {
            for (e, &k) in batch.into_iter().zip(chosen) {
                parts[k].0.push(e);
            }
            Some(whole)
        }
    };
    for (k, (part, own)) in parts.into_iter().enumerate().filter(|(_, (p, _))| !p.is_empty()) {
        let stamps = whole.take().unwrap_or_else(|| Stamps::from_vec(own));
        out.push((k, Envelope { value: make(part), stamps }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routes `batch` (holding `stamps`) with `router` over `paths`: `(path, items, stamps)`.
    fn split<E: 'static>(
        router: impl Fn(&[E]) -> Vec<usize> + Send + Sync + 'static,
        batch: Vec<E>,
        stamps: Stamps,
        paths: usize,
    ) -> Result<Vec<(usize, Vec<E>, Stamps)>, String> {
        let router = PerBatch(router);
        let chosen = router.choose(&batch, paths)?;
        let mut out = Vec::new();
        let whole = PerBatch::<fn(&[E]) -> Vec<usize>>::split(chosen, Envelope { value: batch, stamps }, &mut out);
        assert!(whole.is_none(), "a batch is always split into `out`");
        Ok(out.into_iter().map(|(k, e)| (k, e.value, e.stamps)).collect())
    }

    #[test]
    fn a_batch_splits_by_element_with_each_elements_stamp() {
        let by_three = |b: &[u32]| b.iter().map(|&x| (x % 3) as usize).collect();
        let parts = split(by_three, vec![0, 1, 2, 3, 4, 6], Stamps::Many(vec![10, 11, 12, 13, 14, 16]), 3).unwrap();
        assert_eq!(
            parts,
            vec![
                (0, vec![0, 3, 6], Stamps::Many(vec![10, 13, 16])),
                (1, vec![1, 4], Stamps::Many(vec![11, 14])),
                (2, vec![2], Stamps::One(12)),
            ]
        );
    }

    #[test]
    fn stamps_that_do_not_match_the_elements_go_whole_to_the_first_sub_batch() {
        let odd_first = |b: &[u32]| b.iter().map(|&x| 1 - (x % 2) as usize).collect();
        let parts = split(odd_first, vec![1, 2, 3], Stamps::One(7), 2).unwrap();
        assert_eq!(parts, vec![(0, vec![1, 3], Stamps::One(7)), (1, vec![2], Stamps::None)]);
    }

    #[test]
    fn an_empty_batch_routes_nothing() {
        let parts = split(|_: &[u32]| Vec::new(), Vec::new(), Stamps::Many(vec![1, 2]), 2).unwrap();
        assert!(parts.is_empty());
    }

    #[test]
    fn a_wrong_count_or_an_index_out_of_range_fails_the_batch_with_the_reason() {
        let short = split(|_: &[u32]| vec![0], vec![1, 2], Stamps::None, 2).unwrap_err();
        assert!(short.contains("returned 1 path indices for a batch of 2"), "{short}");
        let far = split(|_: &[u32]| vec![0, 5], vec![1, 2], Stamps::None, 2).unwrap_err();
        assert!(far.contains("chose path 5 for item 1 of the batch, but there are 2 (0 to 1)"), "{far}");
    }

    #[test]
    fn an_item_router_names_one_path_and_refuses_one_out_of_range() {
        let router = PerItem(|x: &u32| *x as usize);
        assert_eq!(router.choose(&1, 2), Ok(1));
        assert_eq!(router.choose(&2, 2), Err("the router chose path 2, but there are 2 (0 to 1)".to_string()));
    }
}
