//! The comparisons table: for every pair of proxies of a method, and for every method against
//! every baseline, a paired comparison over the evaluation images (`embcam_eval::paired`) of the
//! headline metrics, with the spread of the difference over seeds.
//!
//! Pairing: with several seeds, each image's value is first averaged over the seeds (the images
//! are the same in every seed; the networks differ), then A and B are compared image by image:
//! bootstrap 95% interval of the mean difference and Wilcoxon's signed-rank p. Beside them, the
//! per-seed mean differences' standard deviation says how much the ranking depends on the seed.
//! Only images scored on both sides in every seed enter.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use embcam_eval::Metric;

use crate::table::{Key, Row, UNTRAINED, source_label};

/// Bootstrap resamples per comparison.
const RESAMPLES: usize = 2000;

/// One comparison of A against B on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Grid cell.
    pub cell: String,
    /// What kind of comparison: `proxy` (two proxies of one method) or `baseline`.
    pub kind: &'static str,
    /// A: source.
    pub a_source: String,
    /// A: proxy.
    pub a_proxy: String,
    /// A: stage.
    pub a_stage: String,
    /// B: source.
    pub b_source: String,
    /// B: proxy.
    pub b_proxy: String,
    /// The metric (its column name in the CSV).
    #[serde(serialize_with = "metric_name")]
    pub metric: Metric,
    /// Seeds.
    pub seeds: usize,
    /// Images paired.
    pub images: usize,
    /// Mean of A − B over images (seed-averaged values).
    pub mean_diff: f64,
    /// Standard deviation over seeds of the per-seed mean differences (0 for one seed).
    pub seed_sd: f64,
    /// Bootstrap 95% interval, lower end.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// Wilcoxon's `min(W⁺, W⁻)`.
    pub wilcoxon: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Per key: seed → image id → value of one metric.
type Values = BTreeMap<u64, BTreeMap<u32, f64>>;

/// Every comparison the rows allow. `baselines` names the map baselines (`center-gaussian`,
/// `uniform-random`); the untrained network's rows (`<method> (untrained)`) are compared with
/// the same method and proxy on the trained network.
pub fn comparisons(rows: &[Row], baselines: &[&str]) -> Result<Vec<Comparison>> {
    let mut out = Vec::new();
    for metric in Metric::COMPARED {
        let mut by_key: BTreeMap<&Key, Values> = BTreeMap::new();
        for r in rows {
            if let Some(v) = r.get(metric) {
                by_key.entry(&r.key).or_default().entry(r.seed).or_default().insert(r.image_id, v);
            }
        }
        let is_baseline =
            |k: &Key| baselines.contains(&k.source.as_str()) || k.source.ends_with(UNTRAINED);
        let methods: Vec<&Key> = by_key.keys().copied().filter(|k| !is_baseline(k)).collect();
        let mut pairs: Vec<(&'static str, &Key, &Key)> = Vec::new();
        for (i, a) in methods.iter().enumerate() {
            for b in &methods[i + 1..] {
                let same_method = a.cell == b.cell && a.source == b.source && a.stage == b.stage;
                if same_method && a.proxy != b.proxy {
                    pairs.push(("proxy", a, b));
                }
            }
        }
        for a in &methods {
            for b in by_key.keys().filter(|b| b.cell == a.cell) {
                let untrained_twin = b.source == format!("{}{UNTRAINED}", a.source)
                    && b.proxy == a.proxy
                    && b.stage == a.stage;
                if untrained_twin || baselines.contains(&b.source.as_str()) {
                    pairs.push(("baseline", a, b));
                }
            }
        }
        for (kind, a, b) in pairs {
            if let Some(c) = compare(kind, metric, a, &by_key[a], b, &by_key[b])? {
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn compare(
    kind: &'static str,
    metric: Metric,
    a_key: &Key,
    a: &Values,
    b_key: &Key,
    b: &Values,
) -> Result<Option<Comparison>> {
    let seeds: Vec<u64> = a.keys().filter(|s| b.contains_key(s)).copied().collect();
    // Images scored on both sides in every seed.
    let images: BTreeSet<u32> = seeds
        .iter()
        .map(|s| a[s].keys().filter(|id| b[s].contains_key(id)).copied().collect::<BTreeSet<_>>())
        .reduce(|x, y| x.intersection(&y).copied().collect())
        .unwrap_or_default();
    if images.is_empty() {
        return Ok(None);
    }
    let avg =
        |v: &Values, id: u32| seeds.iter().map(|s| v[s][&id]).sum::<f64>() / seeds.len() as f64;
    let av: Vec<f64> = images.iter().map(|&id| avg(a, id)).collect();
    let bv: Vec<f64> = images.iter().map(|&id| avg(b, id)).collect();
    let p = embcam_eval::paired(&av, &bv, RESAMPLES, 0)?;
    let per_seed = seeds
        .iter()
        .map(|s| images.iter().map(|id| a[s][id] - b[s][id]).sum::<f64>() / images.len() as f64);
    let seed_sd = crate::table::over_seeds(per_seed).map_or(0.0, |st| st.spread);
    Ok(Some(Comparison {
        cell: a_key.cell.clone(),
        kind,
        a_source: a_key.source.clone(),
        a_proxy: a_key.proxy.clone(),
        a_stage: a_key.stage.clone(),
        b_source: b_key.source.clone(),
        b_proxy: b_key.proxy.clone(),
        metric,
        seeds: seeds.len(),
        images: images.len(),
        mean_diff: p.mean_diff,
        seed_sd,
        ci_low: p.ci_low,
        ci_high: p.ci_high,
        wilcoxon: p.wilcoxon,
        p_value: p.p_value,
    }))
}

/// The comparisons as a markdown table.
pub fn markdown(cs: &[Comparison]) -> String {
    let has_cells = cs.iter().any(|c| !c.cell.is_empty());
    let mut out = String::from(
        "A − B, paired over images (values averaged over seeds first): mean difference, its \
         bootstrap 95% interval, the standard deviation of the per-seed mean differences, and \
         Wilcoxon's signed-rank p (two-sided).\n\n",
    );
    let columns = [
        "metric",
        "A",
        "B",
        "stage",
        "seeds",
        "images",
        "A − B",
        "95% CI",
        "sd over seeds",
        "p (Wilcoxon)",
    ];
    crate::table::write_header(&mut out, has_cells, columns);
    for c in cs {
        let mut cells = vec![];
        if has_cells {
            cells.push(c.cell.clone());
        }
        cells.extend([
            c.metric.label().to_string(),
            source_label(&c.a_source, &c.a_proxy),
            source_label(&c.b_source, &c.b_proxy),
            c.a_stage.clone(),
            c.seeds.to_string(),
            c.images.to_string(),
            format!("{:+.3}", c.mean_diff),
            format!("[{:+.3}, {:+.3}]", c.ci_low, c.ci_high),
            format!("{:.3}", c.seed_sd),
            format_p(c.p_value),
        ]);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// A metric as its column name.
fn metric_name<S: serde::Serializer>(m: &Metric, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

fn format_p(p: f64) -> String {
    if p < 1e-4 { format!("{p:.1e}") } else { format!("{p:.4}") }
}

/// The comparisons as CSV, one serde row each.
pub fn csv(cs: &[Comparison]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for c in cs {
        w.serialize(c)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str, proxy: &str, stage: &str) -> Key {
        Key { cell: String::new(), source: source.into(), proxy: proxy.into(), stage: stage.into() }
    }

    fn row(k: &Key, seed: u64, id: u32, box_ratio: f64) -> Row {
        let mut values = [None; Metric::PER_IMAGE.len()];
        values[0] = Some(box_ratio);
        Row { key: k.clone(), seed, image_id: id, values }
    }

    #[test]
    fn pairs_proxies_and_baselines_and_averages_seeds_per_image() {
        let nm = key("embeddingcam", "normalized-mean", "block4");
        let sp = key("embeddingcam", "single-point", "block4");
        let un = key("embeddingcam (untrained)", "normalized-mean", "block4");
        let cg = key("center-gaussian", "-", "-");
        let mut rows = Vec::new();
        for seed in [0, 1] {
            for id in 1..=4u32 {
                // Binary fractions, so that sums and ties are exact.
                let x = id as f64 * 0.125;
                // normalized-mean beats single-point by 0.125 in seed 0 and by 0.375 in seed 1.
                rows.push(row(&nm, seed, id, x + 0.125 + 0.25 * seed as f64));
                rows.push(row(&sp, seed, id, x));
                rows.push(row(&un, seed, id, x));
                rows.push(row(&cg, seed, id, 0.25));
            }
        }
        let cs = comparisons(&rows, &["center-gaussian"]).expect("comparisons");
        let find = |a: &Key, b: &Key| {
            cs.iter()
                .find(|c| {
                    c.a_source == a.source
                        && c.a_proxy == a.proxy
                        && c.b_source == b.source
                        && c.b_proxy == b.proxy
                        && c.metric == Metric::BoxRatio
                })
                .unwrap_or_else(|| panic!("{a:?} vs {b:?} missing"))
        };
        // Proxy pair: per image, seed-averaged A − B = (0.125 + 0.375)/2 = 0.25, so the
        // interval collapses onto it; per-seed means 0.125 and 0.375: sd = 0.25/√2 = 0.176777.
        let c = find(&nm, &sp);
        assert_eq!((c.kind, c.seeds, c.images), ("proxy", 2, 4));
        assert!((c.mean_diff - 0.25).abs() < 1e-12 && (c.ci_low - 0.25).abs() < 1e-12);
        assert!((c.seed_sd - 0.176_776_695).abs() < 1e-8);
        // 4 positive differences, all tied: W⁻ = 0, Var = 4·5·9/24 − (64 − 4)/48 = 6.25,
        // z = (10 − 5)/2.5 = 2, p = 2(1 − Φ(2)) = 0.045500.
        assert!((c.p_value - 0.045_500).abs() < 1e-5, "{}", c.p_value);
        // Baselines: centre prior and the untrained twin, and no untrained-vs-other pairing.
        assert!((find(&nm, &un).mean_diff - 0.25).abs() < 1e-12);
        let c = find(&nm, &cg);
        // A per image: id/8 + 0.25, so A − 0.25 averages mean(id/8) = 0.3125.
        assert!((c.mean_diff - 0.3125).abs() < 1e-12);
        assert!(
            !cs.iter()
                .any(|c| c.a_source.ends_with("(untrained)") || c.a_source == "center-gaussian")
        );
        assert!(!cs.iter().any(|c| c.a_proxy == "single-point"
            && c.b_source.ends_with("(untrained)")
            && c.b_proxy == "normalized-mean"));
        let md = markdown(&cs);
        assert!(md.contains("| box ratio | embeddingcam / normalized-mean | embeddingcam / single-point | block4 | 2 | 4 | +0.250 |"), "{md}");
        let text = csv(&cs).expect("csv");
        assert!(text.starts_with("cell,kind,a_source,a_proxy,a_stage,b_source,b_proxy,metric,seeds,images,mean_diff,seed_sd,ci_low,ci_high,wilcoxon,p_value\n"), "{text}");
    }
}
