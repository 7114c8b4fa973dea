//! Turning real-valued shares into basis points that sum to exactly 10 000.

/// Basis points in a whole.
pub const TOTAL_BP: u32 = 10_000;

/// Largest-remainder rounding of non-negative `shares` to basis points summing to 10 000.
/// Ties go to the lower index, so the result is deterministic. All-zero (or empty) input
/// gives an even split (empty stays empty).
#[must_use]
pub fn to_basis_points(shares: &[f64]) -> Vec<u16> {
    if shares.is_empty() {
        return Vec::new();
    }
    let clean: Vec<f64> = shares.iter().map(|s| if s.is_finite() && *s > 0.0 { *s } else { 0.0 }).collect();
    let sum: f64 = clean.iter().sum();
    let exact: Vec<f64> = if sum > 0.0 {
        clean.iter().map(|s| s / sum * f64::from(TOTAL_BP)).collect()
    } else {
        vec![f64::from(TOTAL_BP) / clean.len() as f64; clean.len()]
    };
    let mut bp: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let given: u32 = bp.iter().sum();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    for &i in order.iter().cycle().take(TOTAL_BP.saturating_sub(given) as usize) {
        bp[i] += 1;
    }
    bp.into_iter().map(|x| u16::try_from(x).expect("at most 10 000")).collect()
}
