//! The peer's pure decisions: whom to link to, whom to ask as witness, and what the witnesses'
//! votes mean. Free functions over plain data so they can be table-tested and reused by the
//! simulator's checks.

use crate::msg::Endpoint;
use crate::rng::Rng;

/// Preferential attachment: up to `k` distinct endpoints of `candidates`, each draw weighted
/// by the candidate's degree weight, without replacement, in the order drawn.
///
/// A candidate of weight 0 is never chosen (callers give an answering peer weight at least 1;
/// 0 means "not a candidate"). Listing a candidate twice does not make it chosen twice.
/// Deterministic for a given `rng` state.
pub fn choose_neighbours(candidates: &[(Endpoint, u32)], k: usize, rng: &mut Rng) -> Vec<Endpoint> {
    let mut weights: Vec<u64> = candidates.iter().map(|&(_, w)| u64::from(w)).collect();
    let mut chosen = Vec::with_capacity(k.min(candidates.len()));
    while chosen.len() < k {
        let Some(i) = rng.weighted(&weights) else {
            break;
        };
        let Some(&(peer, _)) = candidates.get(i) else {
            break;
        };
        // Zero every listing of this endpoint so a duplicate row cannot be drawn again.
        for (w, (p, _)) in weights.iter_mut().zip(candidates) {
            if *p == peer {
                *w = 0;
            }
        }
        chosen.push(peer);
    }
    chosen
}

/// Up to `k` witnesses for a suspicion: `preferred` first (the detector's other neighbours,
/// who are likely to be the suspect's neighbours too and whose links are known to work),
/// in random order, then `others` at random to fill up.
pub fn pick_witnesses(
    preferred: &[Endpoint],
    others: &[Endpoint],
    k: usize,
    rng: &mut Rng,
) -> Vec<Endpoint> {
    let mut picked = rng.sample(preferred, k);
    let rest = k.saturating_sub(picked.len());
    if rest > 0 {
        let pool: Vec<Endpoint> = others
            .iter()
            .filter(|p| !picked.contains(p))
            .copied()
            .collect();
        picked.extend(rng.sample(&pool, rest));
    }
    picked
}

/// The outcome of a peer-level suspicion round.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Votes for dead: the detector's own plus every witness that said dead.
    pub dead_votes: u32,
    /// Votes for alive: witnesses that said alive.
    pub alive_votes: u32,
    /// A strict majority of the votes said dead, and at least one of them was a witness's:
    /// one peer alone never gets another removed.
    pub consensus: bool,
}

/// Tallies a suspicion round from the witnesses' answers (witnesses that failed to answer
/// cast no vote).
pub fn verdict(dead_witnesses: u32, alive_witnesses: u32) -> Verdict {
    let dead_votes = dead_witnesses.saturating_add(1);
    let alive_votes = alive_witnesses;
    let total = u64::from(dead_votes) + u64::from(alive_votes);
    Verdict {
        dead_votes,
        alive_votes,
        consensus: dead_witnesses >= 1 && 2 * u64::from(dead_votes) > total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `127.0.0.1:port`.
    fn ep(port: u16) -> Endpoint {
        Endpoint::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn verdict_table() {
        // (dead witnesses, alive witnesses, dead votes, alive votes, consensus)
        let cases = [
            (0, 0, 1, 0, false), // nobody answered: the detector alone decides nothing
            (0, 3, 1, 3, false), // all alive
            (1, 0, 2, 0, true),  // the one witness agrees
            (1, 1, 2, 1, true),  // 2 of 3 say dead
            (1, 2, 2, 2, false), // a tie is no majority
            (2, 2, 3, 2, true),
            (0, 1, 1, 1, false),
        ];
        for (d, a, dv, av, c) in cases {
            let v = verdict(d, a);
            assert_eq!(
                v,
                Verdict {
                    dead_votes: dv,
                    alive_votes: av,
                    consensus: c
                },
                "dead={d} alive={a}"
            );
        }
    }

    #[test]
    fn choose_table() {
        // (candidates as (port, weight), k, expected number chosen)
        type Case = (&'static [(u16, u32)], usize, usize);
        let cases: &[Case] = &[
            (&[], 3, 0),
            (&[(1, 0), (2, 0)], 2, 0),
            (&[(1, 1), (2, 0), (3, 5)], 5, 2),
            (&[(1, 1), (2, 1), (3, 1)], 2, 2),
            (&[(1, 4), (1, 4), (2, 1)], 3, 2), // a duplicate row is chosen once
            (&[(1, 1)], 0, 0),
        ];
        for seed in 0..50u64 {
            for &(cands, k, want) in cases {
                let cands: Vec<(Endpoint, u32)> = cands.iter().map(|&(p, w)| (ep(p), w)).collect();
                let mut rng = Rng::new(seed);
                let got = choose_neighbours(&cands, k, &mut rng);
                assert_eq!(got.len(), want, "seed={seed} cands={cands:?} k={k}");
                let mut dedup = got.clone();
                dedup.sort();
                dedup.dedup();
                assert_eq!(dedup.len(), got.len(), "duplicate pick, seed={seed}");
                for p in &got {
                    let w = cands.iter().find(|(c, _)| c == p).map(|&(_, w)| w);
                    assert!(w.unwrap_or(0) > 0, "zero-weight pick {p}, seed={seed}");
                }
                // Same rng state, same answer.
                assert_eq!(got, choose_neighbours(&cands, k, &mut Rng::new(seed)));
            }
        }
    }

    #[test]
    fn heavier_candidates_are_picked_more_often() {
        let cands = [(ep(1), 1), (ep(2), 10), (ep(3), 1)];
        let mut first = [0u32; 3];
        for seed in 0..2_000u64 {
            let got = choose_neighbours(&cands, 1, &mut Rng::new(seed));
            let i = cands.iter().position(|(p, _)| got.first() == Some(p));
            if let Some(i) = i {
                first[i] += 1;
            }
        }
        // Expected about 1/12, 10/12, 1/12 of 2000.
        assert!(
            first[1] > 1_500,
            "heavy picked {} times: {first:?}",
            first[1]
        );
        assert!(
            first[0] > 50 && first[2] > 50,
            "light never picked: {first:?}"
        );
    }

    #[test]
    fn witnesses_prefer_neighbours_then_fill() {
        let mut rng = Rng::new(4);
        let pref = [ep(1), ep(2)];
        let others = [ep(2), ep(3), ep(4), ep(5)];
        let w = pick_witnesses(&pref, &others, 3, &mut rng);
        assert_eq!(w.len(), 3);
        assert!(w.contains(&ep(1)) && w.contains(&ep(2)));
        let w = pick_witnesses(&pref, &others, 1, &mut rng);
        assert!(w == vec![ep(1)] || w == vec![ep(2)], "{w:?}");
        let w = pick_witnesses(&[], &others, 10, &mut rng);
        assert_eq!(w.len(), 4);
        assert!(pick_witnesses(&[], &[], 3, &mut rng).is_empty());
    }
}
