//! Elastic resume: a training job stopped with `W` ranks goes on with another number, `W'`.
//!
//! ```text
//!  rank 0's state   ┐
//!  rank 1's state   ├─ LoaderState::merge ─▶ the job's state ─┬─ repartition(folder of rank 0 of W') ─▶ resume
//!  …                │   (what every rank consumed)            ├─ repartition(folder of rank 1 of W') ─▶ resume
//!  rank W-1's state ┘                                         └─ …
//! ```
//!
//! Each rank's state holds a bit for every sample of the folder, so the job's state is their
//! union. The rest of the epoch (its samples in the epoch's order that no rank consumed) is
//! dealt out to the `W'` new ranks as a whole epoch is: rank `r` takes every `W'`-th from
//! position `r`, after `drop_last` has cut the rest to a multiple of `W'`. Later epochs are
//! whole and partitioned by `W'`.
//!
//! A repartitioned state keeps what the job had consumed (its `base`) besides what its rank
//! consumes next, so the rest is dealt out the same way however often the job stops again: a
//! rank resumed with its own state (same `W'`) walks the same share minus what it consumed,
//! and the states of the `W'` ranks merge again for yet another world size.

use super::ImageFolder;
use super::resume::{DatasetId, LoaderState, ResumeError, WHOLE_JOB, ones};

/// Why states could not be merged ([`LoaderState::merge`]) or repartitioned
/// ([`LoaderState::repartition`]).
#[derive(Debug, thiserror::Error)]
pub enum ElasticError {
    /// `merge` was given no states.
    #[error("no loader states to merge: pass the saved state of every rank of the job")]
    Nothing,
    /// A state given to `merge` is itself merged.
    #[error(
        "state {position} of those given is already merged (every rank of world_size {world_size}): merge the ranks' own states, once"
    )]
    AlreadyMerged {
        /// Its position among the states given.
        position: usize,
        /// The world size it was merged from.
        world_size: u64,
    },
    /// Two ranks' states do not belong to one job at one training step.
    #[error(
        "rank {rank}'s state has {what} {theirs}, but rank {first}'s has {ours}: merge the states one job saved at one training step"
    )]
    Differ {
        /// The rank whose state differs.
        rank: u64,
        /// The rank it was compared with (the first state given).
        first: u64,
        /// What differs: "world_size", "epoch", "shuffle seed", ….
        what: &'static str,
        /// The differing state's value.
        theirs: String,
        /// The first state's value.
        ours: String,
    },
    /// Two states of one rank.
    #[error("two states of rank {rank} of world_size {world_size}: pass each rank's state once")]
    DuplicateRank {
        /// The rank.
        rank: u64,
        /// The job's world size.
        world_size: u64,
    },
    /// A rank's state is missing: what it consumed would be loaded again.
    #[error(
        "no state of rank {rank} of world_size {world_size}: without it, what that rank trained on would be loaded again; pass the state of every rank"
    )]
    MissingRank {
        /// The first missing rank.
        rank: u64,
        /// The job's world size.
        world_size: u64,
    },
    /// `repartition` was called on one rank's state.
    #[error(
        "this is the state of rank {rank} of world_size {world_size} alone: merge every rank's state with LoaderState::merge, then repartition the result"
    )]
    NotMerged {
        /// The state's rank.
        rank: u64,
        /// Its world size.
        world_size: u64,
    },
    /// The folder walks another dataset, seed or `drop_last` than the merged state.
    #[error(transparent)]
    Resume(#[from] ResumeError),
}

impl LoaderState {
    /// The whole job's state, merged from the states that its ranks saved at one training step
    /// (one per rank, in any order): what any rank consumed of the current epoch. Take each new
    /// rank's part with [`LoaderState::repartition`]. The states must share the dataset, shuffle
    /// seed, `drop_last`, world size and epoch; states of ranks that were themselves resumed
    /// elastically must come from the same merge.
    pub fn merge(states: &[LoaderState]) -> Result<LoaderState, ElasticError> {
        let first = states.first().ok_or(ElasticError::Nothing)?;
        if let Some(position) = states.iter().position(|s| s.id.rank == WHOLE_JOB) {
            return Err(ElasticError::AlreadyMerged { position, world_size: states[position].id.world_size });
        }
        for s in states {
            let differ = |what, theirs: String, ours: String| ElasticError::Differ {
                rank: s.id.rank,
                first: first.id.rank,
                what,
                theirs,
                ours,
            };
            if s.id.world_size != first.id.world_size {
                return Err(differ("world_size", s.id.world_size.to_string(), first.id.world_size.to_string()));
            }
            if let Some(ResumeError { what, saved, now }) = s.id.walk_mismatch(&first.id) {
                return Err(differ(what, saved, now));
            }
            if s.epoch != first.epoch {
                return Err(differ("epoch", s.epoch.to_string(), first.epoch.to_string()));
            }
            if s.base != first.base {
                let base = |st: &LoaderState| match st.base_bits() {
                    None => "none (not resumed elastically in this epoch)".to_string(),
                    Some(b) => format!("one dealt out after {} samples", ones(b)),
                };
                return Err(differ("the epoch's rest", base(s), base(first)));
            }
        }
        check_ranks(states, first.id.world_size)?;
        let mut consumed = first.consumed.clone();
        for s in &states[1..] {
            consumed.iter_mut().zip(&s.consumed).for_each(|(c, w)| *c |= w);
        }
        let mut id = first.id;
        id.rank = WHOLE_JOB;
        Ok(LoaderState { epoch: first.epoch, consumed, base: None, id })
    }

    /// This rank's state after an elastic resume: `self` is a merged state
    /// ([`LoaderState::merge`]) and `folder` is listed, shuffled, partitioned (for the new world
    /// size) and `drop_last`-set as this rank's loader will be. Resume the folder with the
    /// result ([`ImageFolder::resume`]), record into it and save it as any rank's state.
    pub fn repartition(&self, folder: &ImageFolder) -> Result<LoaderState, ElasticError> {
        if self.id.rank != WHOLE_JOB {
            return Err(ElasticError::NotMerged { rank: self.id.rank, world_size: self.id.world_size });
        }
        let id = DatasetId::of(folder);
        if let Some(err) = self.id.walk_mismatch(&id) {
            return Err(err.into());
        }
        // Nothing consumed yet: the rest is the whole epoch, walked as without a resume.
        let base = self.consumed.iter().any(|&w| w != 0).then(|| self.consumed.clone());
        Ok(LoaderState { epoch: self.epoch, consumed: self.consumed.clone(), base, id })
    }
}

/// Every rank of `0..world_size` has exactly one state.
fn check_ranks(states: &[LoaderState], world_size: u64) -> Result<(), ElasticError> {
    let mut ranks: Vec<u64> = states.iter().map(|s| s.id.rank).collect();
    ranks.sort_unstable();
    if let Some(pair) = ranks.windows(2).find(|p| p[0] == p[1]) {
        return Err(ElasticError::DuplicateRank { rank: pair[0], world_size });
    }
    // Sorted, distinct and below `world_size`: the first rank not at its own position is missing.
    match ranks.iter().enumerate().find(|&(i, &r)| r != i as u64) {
        Some((i, _)) => Err(ElasticError::MissingRank { rank: i as u64, world_size }),
        None if (ranks.len() as u64) < world_size => {
            Err(ElasticError::MissingRank { rank: ranks.len() as u64, world_size })
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::images::Sample;

    fn folder(n: usize) -> ImageFolder {
        ImageFolder::from_files((0..n).map(|i| (format!("data/f{i}.jpg"), Some((i % 3) as u32)))).unwrap()
    }

    fn rank_folder(n: usize, rank: usize, world: usize, drop_last: bool) -> ImageFolder {
        folder(n).shuffle(11).partition(rank, world).unwrap().drop_last(drop_last)
    }

    /// Each rank of `world` resumes from its state, consumes `take` of its epoch's share
    /// (every third sample, as an unordered pipeline delivers them) and saves.
    fn run_ranks(
        states: &[LoaderState],
        n: usize,
        world: usize,
        drop_last: bool,
        take: usize,
    ) -> (Vec<LoaderState>, Vec<Vec<Sample>>) {
        let mut out = Vec::new();
        let mut shares = Vec::new();
        for (rank, state) in states.iter().enumerate() {
            let f = rank_folder(n, rank, world, drop_last).resume(state).unwrap();
            let share = f.epoch(state.epoch());
            let mut state = state.clone();
            let taken: Vec<Sample> = share.iter().step_by(3).take(take).cloned().collect();
            state.record(&taken).unwrap();
            out.push(state);
            shares.push(share);
        }
        (out, shares)
    }

    fn repartitioned(merged: &LoaderState, n: usize, world: usize, drop_last: bool) -> Vec<LoaderState> {
        (0..world).map(|r| merged.repartition(&rank_folder(n, r, world, drop_last)).unwrap()).collect()
    }

    fn indices(v: &[Sample]) -> Vec<u64> {
        v.iter().map(|s| s.index).collect()
    }

    /// A job of 3 ranks stops mid-epoch; resumed on `w2` ranks, their shares and what the first
    /// job consumed cover the epoch once (all but fewer than `w2` under `drop_last`, every
    /// share then of one length); the next epoch is the `w2`-rank partition.
    #[test]
    fn the_rest_of_an_epoch_is_dealt_out_once_to_any_number_of_ranks() {
        let n = 101;
        for drop_last in [false, true] {
            let mut fresh: Vec<LoaderState> =
                (0..3).map(|r| LoaderState::new(&rank_folder(n, r, 3, drop_last))).collect();
            fresh.iter_mut().for_each(LoaderState::finish_epoch);
            let (saved, _) = run_ranks(&fresh, n, 3, drop_last, 7);
            let merged = LoaderState::merge(&saved).unwrap();
            assert_eq!((merged.epoch(), merged.consumed(), merged.rank(), merged.world_size()), (1, 21, None, 3));
            for w2 in [1, 2, 4, 5] {
                let states = repartitioned(&merged, n, w2, drop_last);
                let shares: Vec<Vec<u64>> = (0..w2)
                    .map(|r| indices(&rank_folder(n, r, w2, drop_last).resume(&states[r]).unwrap().epoch(1)))
                    .collect();
                let mut all: Vec<u64> = shares.concat();
                all.extend((0..n as u64).filter(|&i| bit(&merged, i)));
                let distinct: HashSet<u64> = all.iter().copied().collect();
                assert_eq!(distinct.len(), all.len(), "w2 {w2} drop_last {drop_last}: a sample dealt twice");
                let missed = n - all.len();
                let lens = shares.iter().map(Vec::len);
                let spread = lens.clone().max().unwrap() - lens.min().unwrap();
                assert!(spread <= 1, "w2 {w2}: shares as even as a whole epoch's");
                if drop_last {
                    assert!(missed < w2, "w2 {w2}: {missed} left out");
                    assert!(shares.iter().all(|s| s.len() == shares[0].len()), "equal shares");
                } else {
                    assert_eq!(missed, 0, "w2 {w2}: every sample once");
                }
                for (r, state) in states.iter().enumerate() {
                    let f = rank_folder(n, r, w2, drop_last);
                    assert_eq!(indices(&f.clone().resume(state).unwrap().epoch(2)), indices(&f.epoch(2)));
                }
            }
        }
    }

    fn bit(s: &LoaderState, i: u64) -> bool {
        crate::images::resume::bit(&s.consumed, i)
    }

    /// 3 ranks → 2 → 4 within one epoch, and in between a rank restarted on its own state: the
    /// epoch is still consumed exactly once.
    #[test]
    fn a_job_resumed_elastically_twice_and_restarted_in_between_consumes_each_sample_once() {
        let n = 90;
        let fresh: Vec<LoaderState> = (0..3).map(|r| LoaderState::new(&rank_folder(n, r, 3, false))).collect();
        let (first, _) = run_ranks(&fresh, n, 3, false, 5);
        let (second, shares) =
            run_ranks(&repartitioned(&LoaderState::merge(&first).unwrap(), n, 2, false), n, 2, false, 4);
        // Rank 1 of 2 stops and restarts on its own state: its share is the same, minus what it took.
        let again = rank_folder(n, 1, 2, false).resume(&second[1]).unwrap().epoch(0);
        let rest: Vec<u64> = indices(&shares[1]).into_iter().filter(|&i| !bit(&second[1], i)).collect();
        assert_eq!(indices(&again), rest);
        let (third, _) = run_ranks(&repartitioned(&LoaderState::merge(&second).unwrap(), n, 4, false), n, 4, false, 3);
        let merged = LoaderState::merge(&third).unwrap();
        assert_eq!(merged.consumed(), 15 + 8 + 12);
        let shares: Vec<Sample> = (0..5)
            .flat_map(|r| {
                rank_folder(n, r, 5, false)
                    .resume(&merged.repartition(&rank_folder(n, r, 5, false)).unwrap())
                    .unwrap()
                    .epoch(0)
            })
            .collect();
        let mut all = indices(&shares);
        all.extend((0..n as u64).filter(|&i| bit(&merged, i)));
        all.sort_unstable();
        assert_eq!(all, (0..n as u64).collect::<Vec<_>>(), "each sample once, consumed or still to come");
    }

    #[test]
    fn merging_refuses_states_of_another_job_step_or_rank_set_naming_the_difference() {
        let n = 40;
        let states: Vec<LoaderState> = (0..3).map(|r| LoaderState::new(&rank_folder(n, r, 3, false))).collect();
        let merged = LoaderState::merge(&states).unwrap();
        let mut later = states[2].clone();
        later.finish_epoch();
        let other_seed = LoaderState::new(&folder(n).shuffle(12).partition(2, 3).unwrap());
        let other_world = LoaderState::new(&rank_folder(n, 2, 4, false));
        let cases: Vec<(Vec<LoaderState>, &str)> = vec![
            (vec![], "no loader states to merge"),
            (vec![states[0].clone(), merged.clone()], "state 1 of those given is already merged"),
            (vec![states[0].clone(), states[1].clone(), later], "rank 2's state has epoch 1, but rank 0's has 0"),
            (
                vec![states[0].clone(), states[1].clone(), other_seed],
                "rank 2's state has shuffle seed 12, but rank 0's has 11",
            ),
            (vec![states[0].clone(), other_world], "rank 2's state has world_size 4, but rank 0's has 3"),
            (vec![states[0].clone(), states[2].clone(), states[0].clone()], "two states of rank 0 of world_size 3"),
            (vec![states[0].clone(), states[2].clone()], "no state of rank 1 of world_size 3"),
            (vec![states[1].clone(), states[0].clone()], "no state of rank 2 of world_size 3"),
        ];
        for (given, says) in cases {
            let err = LoaderState::merge(&given).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        let err = states[1].repartition(&rank_folder(n, 0, 2, false)).unwrap_err().to_string();
        assert!(err.contains("rank 1 of world_size 3 alone: merge every rank's state"), "{err}");
        let err = merged.repartition(&rank_folder(n, 0, 2, true)).unwrap_err().to_string();
        assert!(err.contains("drop_last false, but this folder has true"), "{err}");
        let err = rank_folder(n, 0, 2, false).resume(&merged).unwrap_err().to_string();
        assert!(
            err.contains(
                "every rank of world_size 3 (a merged state: take this rank's part with LoaderState::repartition)"
            ),
            "{err}"
        );
    }

    #[test]
    fn merged_and_repartitioned_states_round_trip_through_bytes() {
        let n = 70;
        let fresh: Vec<LoaderState> = (0..2).map(|r| LoaderState::new(&rank_folder(n, r, 2, true))).collect();
        let (saved, _) = run_ranks(&fresh, n, 2, true, 6);
        let merged = LoaderState::merge(&saved).unwrap();
        let rank = &repartitioned(&merged, n, 3, true)[2];
        assert_eq!(rank.rank(), Some(2));
        for state in [&merged, rank] {
            assert_eq!(&LoaderState::from_bytes(&state.to_bytes()).unwrap(), state);
        }
        assert!(rank.base.is_some() && merged.base.is_none());
    }
}
