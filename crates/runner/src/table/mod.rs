//! Per-image metric rows → summary lines → tables ([`export`]: markdown and CSV); the rows as
//! polars frames for the data files (CSV, Parquet).
//!
//! Rows are grouped by (cell, method/baseline, proxy, stage): each metric's mean over images with a
//! 95% confidence interval (Student's t, `t₀.₉₇₅(n−1)·s/√n`, [`embcam_eval::Summary`]), the number
//! of images and the count of degenerate (all-zero) maps. With several seeds the table reports the mean ± standard
//! deviation over seeds of the per-seed means. Split-level metrics (MaxBoxAccV2, PxAP) come from
//! their own rows and join on the same keys.

mod export;

pub use export::{markdown, summary_csv};

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use embcam_eval::Metric;
use polars::prelude::{Column, CsvWriter, DataFrame, ParquetWriter, SerWriter};

/// The suffix of a source name whose maps come from the untrained network (`embeddingcam
/// (untrained)`): the method's own baseline.
pub const UNTRAINED: &str = " (untrained)";

/// A source and proxy as one label (`embeddingcam / normalized-mean`; a target-free source alone).
pub fn source_label(source: &str, proxy: &str) -> String {
    if proxy == "-" { source.to_string() } else { format!("{source} / {proxy}") }
}

/// Writes a markdown table's header row and rule: a `cell` column first when the rows come from
/// a grid (`has_cells`), then `columns`.
pub fn write_header<S: AsRef<str>>(
    md: &mut String,
    has_cells: bool,
    columns: impl IntoIterator<Item = S>,
) {
    use std::fmt::Write as _;
    let head: Vec<String> = has_cells
        .then(|| "cell".to_string())
        .into_iter()
        .chain(columns.into_iter().map(|c| c.as_ref().to_string()))
        .collect();
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
}

/// The keys a row is grouped by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Key {
    /// Grid cell label (empty without a grid).
    pub cell: String,
    /// CAM method or baseline name.
    pub source: String,
    /// Proxy (`-` for target-free sources).
    pub proxy: String,
    /// Stage.
    pub stage: String,
}

impl Key {
    /// The four fields in column order: cell, source, proxy, stage.
    pub fn fields(&self) -> [String; 4] {
        [self.cell.clone(), self.source.clone(), self.proxy.clone(), self.stage.clone()]
    }
}

/// One image's numbers for one map source.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Group keys.
    pub key: Key,
    /// Seed.
    pub seed: u64,
    /// Image id.
    pub image_id: u32,
    /// `None` where a metric does not apply, in [`Metric::PER_IMAGE`] order.
    pub values: [Option<f64>; Metric::PER_IMAGE.len()],
}

impl Row {
    /// The value of per-image metric `m`.
    pub fn get(&self, m: Metric) -> Option<f64> {
        Metric::PER_IMAGE.iter().position(|&x| x == m).and_then(|i| self.values[i])
    }
}

/// One group's split-level numbers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitRow {
    /// Group keys.
    pub key: Key,
    /// Seed.
    pub seed: u64,
    /// In [`Metric::SPLIT`] order.
    pub values: [Option<f64>; Metric::SPLIT.len()],
}

fn key_columns<'a>(keys: impl Iterator<Item = (&'a Key, u64)> + Clone) -> Vec<Column> {
    let pick =
        |f: fn(&Key) -> &str| keys.clone().map(move |(k, _)| f(k).to_string()).collect::<Vec<_>>();
    vec![
        Column::new("cell".into(), pick(|k| &k.cell)),
        Column::new("source".into(), pick(|k| &k.source)),
        Column::new("proxy".into(), pick(|k| &k.proxy)),
        Column::new("stage".into(), pick(|k| &k.stage)),
        Column::new("seed".into(), keys.map(|(_, s)| s).collect::<Vec<u64>>()),
    ]
}

/// The per-image frame: keys, seed, image id, then [`Metric::PER_IMAGE`].
pub fn rows_frame(rows: &[Row]) -> Result<DataFrame> {
    let mut cols = key_columns(rows.iter().map(|r| (&r.key, r.seed)));
    cols.push(Column::new(
        "image_id".into(),
        rows.iter().map(|r| r.image_id).collect::<Vec<u32>>(),
    ));
    for (i, m) in Metric::PER_IMAGE.iter().enumerate() {
        cols.push(Column::new(
            m.name().into(),
            rows.iter().map(|r| r.values[i]).collect::<Vec<_>>(),
        ));
    }
    DataFrame::new_infer_height(cols).context("building the per-image frame")
}

/// The split-level frame: keys, seed, then [`Metric::SPLIT`].
pub fn split_frame(rows: &[SplitRow]) -> Result<DataFrame> {
    let mut cols = key_columns(rows.iter().map(|r| (&r.key, r.seed)));
    for (i, m) in Metric::SPLIT.iter().enumerate() {
        cols.push(Column::new(
            m.name().into(),
            rows.iter().map(|r| r.values[i]).collect::<Vec<_>>(),
        ));
    }
    DataFrame::new_infer_height(cols).context("building the split-level frame")
}

/// Write a frame as CSV.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    crate::store::write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        CsvWriter::new(&mut f).finish(df)?;
        Ok(())
    })
}

/// Write a frame as Parquet.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    crate::store::write_with(path, |tmp| {
        let f = std::fs::File::create(tmp)?;
        ParquetWriter::new(f).finish(df)?;
        Ok(())
    })
}

/// A statistic of one metric in one group.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stat {
    /// Mean (over images, or over seeds of per-seed means).
    pub mean: f64,
    /// Half-width of the 95% CI over images (one seed), or the std over seeds.
    pub spread: f64,
    /// Images (one seed) or seeds.
    pub n: usize,
    /// The 95% CI half-width over images (with several seeds: its mean over seeds).
    pub image_ci: f64,
}

/// A statistic's four CSV fields (mean, spread, n, image CI); empty fields and n = 0 when the
/// metric has no value in the group.
pub fn stat_fields(st: Option<&Stat>) -> [String; 4] {
    match st {
        Some(st) => [
            format!("{:.6}", st.mean),
            format!("{:.6}", st.spread),
            st.n.to_string(),
            format!("{:.6}", st.image_ci),
        ],
        None => [String::new(), String::new(), "0".into(), String::new()],
    }
}

/// A per-image metric's table cell: `mean ± spread`, and with several seeds `mean ± sd [± mean
/// image CI]`; `–` without a value.
pub fn cell_text(st: Option<&Stat>, seeds: usize) -> String {
    match st {
        Some(st) if seeds > 1 => {
            format!("{:.3} ± {:.3} [± {:.3}]", st.mean, st.spread, st.image_ci)
        }
        Some(st) => format!("{:.3} ± {:.3}", st.mean, st.spread),
        None => "–".to_string(),
    }
}

/// One line of the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Group keys.
    pub key: Key,
    /// Seeds aggregated.
    pub seeds: usize,
    /// Images per seed (the largest count over metrics).
    pub images: usize,
    /// Per metric, in [`Metric::ALL`] order; `None` when no image had it.
    pub stats: Vec<Option<Stat>>,
    /// All-zero maps (summed over seeds).
    pub zero_maps: usize,
}

impl Summary {
    /// The statistic of metric `m`.
    pub fn stat(&self, m: Metric) -> Option<Stat> {
        Metric::ALL.iter().position(|&x| x == m).and_then(|i| self.stats[i])
    }
}

/// One (group, seed)'s numbers: per-image values of each metric, then split-level values.
#[derive(Default)]
struct SeedValues {
    per_image: Vec<Vec<f64>>,
    split: Vec<Option<f64>>,
    zero_maps: usize,
}

/// Aggregate per-image and split-level rows into summary lines, sorted with the baselines last.
/// Per group and seed, each metric's mean and 95% CI over images are `embcam_eval::Summary`'s
/// (one formula for the crate and the tables); several seeds give the mean ± sd of the per-seed
/// means ([`over_seeds`]). A split-level row counts when its group and seed have images.
pub fn summarize(rows: &[Row], split: &[SplitRow], baselines: &[&str]) -> Result<Vec<Summary>> {
    let mut groups: BTreeMap<Key, BTreeMap<u64, SeedValues>> = BTreeMap::new();
    for r in rows {
        let seed = groups.entry(r.key.clone()).or_default().entry(r.seed).or_default();
        seed.per_image.resize(Metric::PER_IMAGE.len(), Vec::new());
        for (values, v) in seed.per_image.iter_mut().zip(r.values) {
            values.extend(v);
        }
        seed.zero_maps += r.get(Metric::ZeroMap).unwrap_or(0.0) as usize;
    }
    for r in split {
        if let Some(seed) = groups.get_mut(&r.key).and_then(|g| g.get_mut(&r.seed)) {
            seed.split = r.values.to_vec();
        }
    }
    let mut out: Vec<Summary> = groups
        .into_iter()
        .map(|(key, seeds)| {
            let seeds: Vec<SeedValues> = seeds.into_values().collect();
            let mut stats = Vec::new();
            let mut images = 0;
            for m in 0..Metric::PER_IMAGE.len() {
                let per_seed: Vec<Option<embcam_eval::Summary>> =
                    seeds.iter().map(|s| embcam_eval::Summary::of(&s.per_image[m])).collect();
                let n = |s: &Option<embcam_eval::Summary>| s.map_or(0, |s| s.n);
                // Student's t 95% half-width over the images of one seed.
                let image_ci =
                    |s: &Option<embcam_eval::Summary>| s.and_then(|s| s.ci95).unwrap_or(0.0);
                images = images.max(per_seed.iter().map(n).max().unwrap_or(0));
                stats.push(if let [one] = per_seed.as_slice() {
                    one.map(|s| {
                        let ci = image_ci(one);
                        Stat { mean: s.mean, spread: ci, n: s.n, image_ci: ci }
                    })
                } else {
                    over_seeds(per_seed.iter().flatten().map(|s| s.mean)).map(|st| Stat {
                        image_ci: per_seed.iter().map(image_ci).sum::<f64>()
                            / per_seed.len() as f64,
                        ..st
                    })
                });
            }
            for m in 0..Metric::SPLIT.len() {
                stats.push(over_seeds(
                    seeds.iter().filter_map(|s| s.split.get(m).copied().flatten()),
                ));
            }
            let zero_maps = seeds.iter().map(|s| s.zero_maps).sum();
            Summary { key, seeds: seeds.len(), images, stats, zero_maps }
        })
        .collect();
    // Baselines last: the untrained network's rows, then the map baselines.
    let rank = |k: &Key| {
        if baselines.contains(&k.source.as_str()) {
            2
        } else if k.source.ends_with(UNTRAINED) {
            1
        } else {
            0
        }
    };
    out.sort_by_key(|s| (s.key.cell.clone(), rank(&s.key), s.key.clone()));
    Ok(out)
}

/// Mean ± sample standard deviation of per-seed values (spread 0 for one seed).
pub fn over_seeds(values: impl Iterator<Item = f64>) -> Option<Stat> {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    Some(Stat { mean, spread: var.sqrt(), n, image_ci: 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str, proxy: &str) -> Key {
        Key {
            cell: String::new(),
            source: source.into(),
            proxy: proxy.into(),
            stage: "block4".into(),
        }
    }

    fn row(k: &Key, seed: u64, id: u32, box_ratio: f64, zero: bool) -> Row {
        let mut values = [None; Metric::PER_IMAGE.len()];
        values[0] = Some(box_ratio);
        values[1] = Some(0.25);
        let zero_map = Metric::PER_IMAGE.iter().position(|&m| m == Metric::ZeroMap);
        values[zero_map.expect("zero_map is per-image")] = Some(zero as u8 as f64);
        Row { key: k.clone(), seed, image_id: id, values }
    }

    /// A split-level row for the first row's group (MaxBoxAccV2 0.5 + seed/10).
    fn split(rows: &[Row]) -> Vec<SplitRow> {
        let r = &rows[0];
        vec![SplitRow {
            key: r.key.clone(),
            seed: r.seed,
            values: [Some(0.5 + r.seed as f64 / 10.0), None],
        }]
    }

    #[test]
    fn one_seed_mean_and_t_interval_by_hand() {
        let (a, b) = (key("embeddingcam", "normalized-mean"), key("center-gaussian", "-"));
        let rows = vec![
            row(&b, 0, 1, 0.1, false),
            row(&b, 0, 2, 0.3, false),
            row(&a, 0, 1, 0.2, false),
            row(&a, 0, 2, 0.4, true),
            row(&a, 0, 3, 0.6, false),
        ];
        let s = summarize(&rows, &split(&rows), &["center-gaussian"]).expect("summary");
        // Baselines sort last.
        assert_eq!(s[0].key, a);
        assert_eq!(s[1].key, b);
        let st = s[0].stat(Metric::BoxRatio).expect("box ratio");
        // mean 0.4; sample std 0.2; CI = t₀.₉₇₅(2) · 0.2/√3 = 4.302653 · 0.115470 = 0.496828.
        assert!((st.mean - 0.4).abs() < 1e-12);
        assert!((st.spread - 0.496828).abs() < 1e-5, "{}", st.spread);
        assert_eq!((st.n, s[0].images, s[0].zero_maps), (3, 3, 1));
        // b: mean 0.2, std √0.02, CI = 12.706205 · 0.141421/1.414214 = 1.270621.
        let st = s[1].stat(Metric::BoxRatio).expect("box ratio");
        assert!((st.mean - 0.2).abs() < 1e-12 && (st.spread - 1.270621).abs() < 1e-5);
        // Metrics no row has are absent, not NaN.
        assert!(s[0].stat(Metric::MaskRatio).is_none());
        // The split-level value joined on the keys (only `b` got one here: `split[..1]`).
        assert_eq!(s[1].stat(Metric::MaxBoxAccV2).map(|x| x.mean), Some(0.5));
        assert!(s[0].stat(Metric::MaxBoxAccV2).is_none());
    }

    #[test]
    fn several_seeds_report_mean_and_std_of_seed_means() {
        let a = key("embeddingcam", "single-point");
        let rows: Vec<Row> = [(0, [0.2, 0.4, 0.6]), (1, [0.5, 0.7, 0.9])]
            .iter()
            .flat_map(|(seed, v)| {
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| row(&a, *seed, i as u32, x, false))
                    .collect::<Vec<_>>()
            })
            .collect();
        let s = summarize(&rows, &split(&rows), &[]).expect("summary");
        let st = s[0].stat(Metric::BoxRatio).expect("box ratio");
        // seed means 0.4 and 0.7: mean 0.55, std |0.7 − 0.4|/√2 = 0.212132.
        assert!((st.mean - 0.55).abs() < 1e-12 && (st.spread - 0.212132).abs() < 1e-6);
        assert_eq!((s[0].seeds, st.n), (2, 2));
    }

    #[test]
    fn markdown_table_format() {
        let (a, b) = (key("embeddingcam", "normalized-mean"), key("uniform-random", "-"));
        let rows = vec![
            row(&a, 0, 1, 0.5, false),
            row(&a, 0, 2, 0.7, false),
            row(&b, 0, 1, 0.25, false),
            row(&b, 0, 2, 0.27, true),
        ];
        let s = summarize(&rows, &split(&rows), &["uniform-random"]).expect("summary");
        insta::assert_snapshot!(markdown(&s));
        insta::assert_snapshot!(summary_csv(&s).expect("csv"));
    }
}
