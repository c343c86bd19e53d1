//! Small statistics over a run's numbers: nearest-rank percentiles and the power-law fit of a
//! degree distribution. Pure functions, no simulator state.

/// The nearest-rank `p`-quantile (`0 < p ≤ 1`) of `sorted` (ascending); `None` if empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Discrete power-law MLE (approximation of Clauset, Shalizi & Newman 2009):
/// `alpha = 1 + n / Σ ln(d_i / (d_min − 0.5))` over degrees `d_i ≥ d_min`.
pub fn powerlaw_alpha(degrees: &[u32], d_min: u32) -> Option<f64> {
    let d_min = d_min.max(1);
    let base = f64::from(d_min) - 0.5;
    let (n, sum) = degrees
        .iter()
        .filter(|&&d| d >= d_min)
        .fold((0u64, 0f64), |(n, s), &d| {
            (n + 1, s + (f64::from(d) / base).ln())
        });
    (n > 0 && sum > 0.0).then(|| 1.0 + n as f64 / sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_of_a_known_sample() {
        // All degrees equal to d_min: ln(2/1.5) each.
        let a = powerlaw_alpha(&[2, 2, 2, 2], 2).unwrap();
        assert!((a - (1.0 + 1.0 / (2.0f64 / 1.5).ln())).abs() < 1e-12);
        assert_eq!(powerlaw_alpha(&[1, 1], 2), None);
        // A heavier tail gives a smaller exponent.
        let b = powerlaw_alpha(&[2, 2, 3, 50, 200], 2).unwrap();
        assert!(b < a);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
