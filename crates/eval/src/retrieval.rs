//! Retrieval quality of an embedding: Recall@K and MAP@R, every point querying all the others.
//!
//! Similarity is cosine: rows are L2-normalised, then compared by dot product. Neighbours are
//! ranked by decreasing similarity, ties broken by the smaller row index, and the query itself is
//! never its own neighbour.

use std::cmp::Ordering;
use std::collections::HashMap;

use rayon::prelude::*;

use crate::EvalError;

/// Recall@K and MAP@R of one labelled embedding set.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalScores {
    /// `(K, Recall@K)`, in the order the `ks` were passed.
    pub recall_at: Vec<(usize, f64)>,
    /// MAP@R (Musgrave et al. 2020), over the queries whose class has another member.
    pub map_at_r: f64,
}

/// Recall@K for each `K` in `ks`, and MAP@R, of `n` embeddings (row-major `n × dim`) with their
/// class labels.
///
/// - **Recall@K** = `(1/n) Σ_q [∃ j ∈ N_K(q): label(j) = label(q)]`, where `N_K(q)` are the `K`
///   nearest rows to `q` by cosine similarity, `q` excluded (the metric-learning convention of
///   Oh Song et al. 2016). `K` larger than `n − 1` means all other rows.
/// - **MAP@R** (Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020):
///   for a query whose class has `R ≥ 1` other members,
///   `AP@R(q) = (1/R) Σ_{i=1..R} P(i)·rel(i)`, with `rel(i) = 1` when the `i`-th neighbour shares
///   the class and `P(i)` the precision of the first `i` neighbours; MAP@R is the mean over such
///   queries (0 when no query has a same-class neighbour).
///
/// A row of zeros has cosine similarity 0 with every row. Parallel over queries.
///
/// # Errors
/// A length that is not `n × dim`, a label count other than `n`, `n < 2`, `dim = 0`, `K = 0`,
/// or a non-finite value (the error names the row).
pub fn retrieval_scores(
    embeddings: &[f32],
    dim: usize,
    labels: &[u32],
    ks: &[usize],
) -> Result<RetrievalScores, EvalError> {
    if dim == 0 || !embeddings.len().is_multiple_of(dim) {
        return Err(EvalError::EmbeddingShape { len: embeddings.len(), dim });
    }
    let n = embeddings.len() / dim;
    if labels.len() != n {
        return Err(EvalError::LabelCount { rows: n, labels: labels.len() });
    }
    if n < 2 {
        return Err(EvalError::TooFewEmbeddings { n });
    }
    if ks.contains(&0) {
        return Err(EvalError::Config("Recall@K needs K ≥ 1".into()));
    }
    let unit = normalised_rows(embeddings, dim)?;
    let mut class_size: HashMap<u32, usize> = HashMap::new();
    for &l in labels {
        *class_size.entry(l).or_default() += 1;
    }
    let k_max = ks.iter().copied().max().unwrap_or(0).min(n - 1);

    // Per query: (first relevant rank (0-based) if any, AP@R if R ≥ 1).
    let per_query: Vec<(Option<usize>, Option<f64>)> = (0..n)
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(n),
            |sims: &mut Vec<(f32, u32)>, q| {
                let r = class_size[&labels[q]] - 1;
                let depth = k_max.max(r).min(n - 1);
                let query = &unit[q * dim..(q + 1) * dim];
                sims.clear();
                sims.extend((0..n).filter(|&j| j != q).map(|j| {
                    // `+ 0.0` folds −0.0 into +0.0 so that ties compare equal.
                    (dot(query, &unit[j * dim..(j + 1) * dim]) + 0.0, j as u32)
                }));
                let top = nearest(sims, depth);
                let relevant = |&(_, j): &(f32, u32)| labels[j as usize] == labels[q];
                let first = top.iter().position(relevant);
                let ap = (r > 0).then(|| {
                    let mut hits = 0usize;
                    let mut sum = 0.0;
                    for (i, nb) in top[..r].iter().enumerate() {
                        if relevant(nb) {
                            hits += 1;
                            sum += hits as f64 / (i + 1) as f64;
                        }
                    }
                    sum / r as f64
                });
                (first, ap)
            },
        )
        .collect();

    // `K` is reported as passed, and clamped to `n − 1` for the count.
    let recall_at = ks
        .iter()
        .map(|&k| {
            let depth = k.min(n - 1);
            let hits = per_query.iter().filter(|(first, _)| first.is_some_and(|f| f < depth));
            (k, hits.count() as f64 / n as f64)
        })
        .collect();
    let aps: Vec<f64> = per_query.iter().filter_map(|&(_, ap)| ap).collect();
    let map_at_r = if aps.is_empty() { 0.0 } else { aps.iter().sum::<f64>() / aps.len() as f64 };
    Ok(RetrievalScores { recall_at, map_at_r })
}

/// L2-normalised copy of the rows; zero rows stay zero. Errors name the first non-finite value.
fn normalised_rows(embeddings: &[f32], dim: usize) -> Result<Vec<f32>, EvalError> {
    let mut out = Vec::with_capacity(embeddings.len());
    for (row, v) in embeddings.chunks_exact(dim).enumerate() {
        if let Some(col) = v.iter().position(|x| !x.is_finite()) {
            return Err(EvalError::NonFiniteEmbedding { row, col, value: v[col] });
        }
        let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        let scale = if norm > 0.0 { (1.0 / norm) as f32 } else { 0.0 };
        out.extend(v.iter().map(|&x| x * scale));
    }
    Ok(out)
}

/// Dot product with eight independent accumulators (vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Neighbour order: similarity descending, then row index ascending.
fn by_rank(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// The `depth` nearest entries of `sims`, sorted by [`by_rank`].
fn nearest(sims: &mut [(f32, u32)], depth: usize) -> &[(f32, u32)] {
    if depth == 0 {
        return &[];
    }
    if depth < sims.len() {
        sims.select_nth_unstable_by(depth - 1, by_rank);
    }
    let top = &mut sims[..depth];
    top.sort_unstable_by(by_rank);
    top
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Five 2-D points at angles 0°, 20°, 50°, 90°, 200° with norms 1, 2, 0.5, 3, 1.5 (norms must
    /// not matter), labels A A B B A.
    fn five_points() -> (Vec<f32>, Vec<u32>) {
        let pts = [(0.0f32, 1.0f32), (20.0, 2.0), (50.0, 0.5), (90.0, 3.0), (200.0, 1.5)];
        let emb = pts
            .iter()
            .flat_map(|&(deg, r)| {
                let t = deg.to_radians();
                [r * t.cos(), r * t.sin()]
            })
            .collect();
        (emb, vec![0, 0, 1, 1, 0])
    }

    #[test]
    fn hand_worked_five_points() {
        // Neighbours by angular distance (label):
        //   p0 (A): p1 20° A, p2 50° B, p3 90° B, p4 160° A
        //   p1 (A): p0 20° A, p2 30° B, p3 70° B, p4 180° A
        //   p2 (B): p1 30° A, p3 40° B, p0 50° A, p4 150° A
        //   p3 (B): p2 40° B, p1 70° A, p0 90° A, p4 110° A
        //   p4 (A): p3 110° B, p2 150° B, p0 160° A, p1 180° A
        // R@1: hits p0 p1 p3 → 3/5; R@2: + p2 → 4/5; R@4: + p4 (3rd is A) → 1; R@8 = R@4.
        // MAP@R: A has 3 members (R = 2), B has 2 (R = 1).
        //   p0: [A, B] → (1/1 + 0)/2 = 0.5; p1: same 0.5; p2: [A] → 0; p3: [B] → 1;
        //   p4: [B, B] → 0. Mean (0.5 + 0.5 + 0 + 1 + 0)/5 = 0.4.
        let (emb, labels) = five_points();
        let s = retrieval_scores(&emb, 2, &labels, &[1, 2, 4, 8]).unwrap();
        let expect = [(1, 0.6), (2, 0.8), (4, 1.0), (8, 1.0)];
        for (&(k, r), &(ek, er)) in s.recall_at.iter().zip(&expect) {
            assert_eq!(k, ek);
            assert!((r - er).abs() < 1e-12, "R@{k} = {r}, expected {er}");
        }
        assert!((s.map_at_r - 0.4).abs() < 1e-12, "MAP@R = {}", s.map_at_r);
    }

    #[test]
    fn map_at_r_counts_late_hits_by_precision() {
        // 1-D points: q = 0 (A), then 1 (B), 2 (A), 10 (A) on a 2-D ray at different angles.
        // Angles 0°, 10°, 20°, 40°; labels A B A A.
        // p0: neighbours p1 B, p2 A, p3 A; R = 2 → (0 + 1/2)/2 = 0.25.
        // p1 (B): R = 0 → excluded.
        // p2: p1 10° B, p0 20° A, p3 20° A (tie → smaller index p0 first); R = 2 → (0 + 1/2)/2 = 0.25.
        // p3: p2 20° A, p1 30° B, p0 40° A; R = 2 → (1 + 0)/2 = 0.5.
        // MAP@R = (0.25 + 0.25 + 0.5)/3 = 1/3.
        let emb: Vec<f32> = [0.0f32, 10.0, 20.0, 40.0]
            .iter()
            .flat_map(|d: &f32| [d.to_radians().cos(), d.to_radians().sin()])
            .collect();
        let s = retrieval_scores(&emb, 2, &[0, 1, 0, 0], &[1]).unwrap();
        assert!((s.map_at_r - 1.0 / 3.0).abs() < 1e-6, "MAP@R = {}", s.map_at_r);
        // R@1: p0 → p1 B miss; p1 → p0 or p2 (10° both; tie → p0) A miss; p2 → p1 miss;
        // p3 → p2 hit. 1/4.
        assert!((s.recall_at[0].1 - 0.25).abs() < 1e-12);
    }

    #[test]
    fn errors_name_the_problem() {
        let (emb, labels) = five_points();
        assert!(matches!(
            retrieval_scores(&emb[..9], 2, &labels, &[1]),
            Err(EvalError::EmbeddingShape { len: 9, dim: 2 })
        ));
        assert!(matches!(
            retrieval_scores(&emb, 2, &labels[..4], &[1]),
            Err(EvalError::LabelCount { rows: 5, labels: 4 })
        ));
        assert!(matches!(
            retrieval_scores(&emb[..2], 2, &labels[..1], &[1]),
            Err(EvalError::TooFewEmbeddings { n: 1 })
        ));
        let mut bad = emb.clone();
        bad[7] = f32::NAN;
        let err = retrieval_scores(&bad, 2, &labels, &[1]).unwrap_err();
        assert!(matches!(err, EvalError::NonFiniteEmbedding { row: 3, col: 1, .. }));
        assert!(err.to_string().contains("row 3"));
        assert!(retrieval_scores(&emb, 2, &labels, &[0]).is_err());
        assert!(retrieval_scores(&emb, 0, &labels, &[1]).is_err());
    }

    #[test]
    fn zero_rows_and_singletons_stay_finite() {
        let emb = vec![0.0; 3 * 4];
        let s = retrieval_scores(&emb, 4, &[0, 1, 2], &[1, 2]).unwrap();
        // All similarities 0: neighbours in index order; no class has two members.
        assert_eq!(s.recall_at, vec![(1, 0.0), (2, 0.0)]);
        assert_eq!(s.map_at_r, 0.0);
    }
}
