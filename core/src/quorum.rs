//! Quorum tallying as a pure function.

use std::collections::BTreeSet;

use crate::msg::Endpoint;

/// Where a vote round stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Not decided yet.
    Pending,
    /// At least a quorum said yes.
    Won,
    /// So many said no that a quorum of yes is impossible.
    Lost,
}

/// Tallies `yes` and `no` voters (distinct seeds) among `n` seeds with quorum `q`.
pub fn tally(n: usize, q: usize, yes: &BTreeSet<Endpoint>, no: &BTreeSet<Endpoint>) -> Tally {
    if yes.len() >= q {
        Tally::Won
    } else if n.saturating_sub(no.len()) < q {
        Tally::Lost
    } else {
        Tally::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ports: &[u16]) -> BTreeSet<Endpoint> {
        ports
            .iter()
            .map(|p| Endpoint::from(([127, 0, 0, 1], *p)))
            .collect()
    }

    #[test]
    fn table() {
        // (n, yes, no, expected)
        let cases: &[(usize, &[u16], &[u16], Tally)] = &[
            (1, &[1], &[], Tally::Won),
            (3, &[1], &[], Tally::Pending),
            (3, &[1, 2], &[], Tally::Won),
            (3, &[1], &[2], Tally::Pending),
            (3, &[1], &[2, 3], Tally::Lost),
            (4, &[1, 2], &[3], Tally::Pending),
            (4, &[1, 2, 3], &[], Tally::Won),
            (4, &[1], &[2, 3], Tally::Lost),
            (5, &[1, 2], &[3, 4], Tally::Pending),
            (5, &[1, 2, 3], &[4, 5], Tally::Won),
            (5, &[], &[1, 2, 3], Tally::Lost),
        ];
        for &(n, yes, no, want) in cases {
            let q = crate::quorum(n);
            assert_eq!(
                tally(n, q, &set(yes), &set(no)),
                want,
                "n={n} yes={yes:?} no={no:?}"
            );
        }
    }
}
