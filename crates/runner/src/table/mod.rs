//! Per-image metric rows → polars frames → summary tables (markdown and CSV).
//!
//! Rows are grouped by (cell, method/baseline, proxy, stage): each metric's mean over images with a
//! 95% confidence interval (Student's t, `t₀.₉₇₅(n−1)·s/√n`), the number of images and the count
//! of degenerate (all-zero) maps. With several seeds the table reports the mean ± standard
//! deviation over seeds of the per-seed means. Split-level metrics (MaxBoxAccV2, PxAP) come from
//! their own rows and join on the same keys.

mod export;

pub use export::{markdown, summary_csv};

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use embcam_eval::Metric;
use polars::prelude::{
    Column, CsvWriter, DataFrame, DataType, Expr, IntoLazy, JoinArgs, JoinType, ParquetWriter,
    SerWriter, SortMultipleOptions, col,
};

/// The suffix of a source name whose maps come from the untrained network (`embeddingcam
/// (untrained)`): the method's own baseline.
pub const UNTRAINED: &str = " (untrained)";

/// A source and proxy as one label (`embeddingcam / normalized-mean`; a target-free source alone).
pub fn source_label(source: &str, proxy: &str) -> String {
    if proxy == "-" { source.to_string() } else { format!("{source} / {proxy}") }
}

/// The keys a row is grouped by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
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

/// One image's numbers for one map source.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

const KEYS: [&str; 4] = ["cell", "source", "proxy", "stage"];

/// Aggregate per-image and split-level rows into summary lines, sorted with the baselines last.
pub fn summarize(rows: &DataFrame, split: &DataFrame, baselines: &[&str]) -> Result<Vec<Summary>> {
    let group: Vec<Expr> = KEYS.iter().map(|k| col(*k)).chain([col("seed")]).collect();
    let mut aggs = Vec::new();
    for m in Metric::PER_IMAGE.map(Metric::name) {
        aggs.push(col(m).mean().alias(format!("{m}:mean")));
        aggs.push(col(m).std(1).alias(format!("{m}:std")));
        aggs.push(col(m).count().cast(DataType::UInt64).alias(format!("{m}:n")));
    }
    aggs.push(col(Metric::ZeroMap.name()).sum().alias("zero_maps"));
    let per_seed = rows
        .clone()
        .lazy()
        .group_by(group.clone())
        .agg(aggs)
        .join(split.clone().lazy(), group.clone(), group, JoinArgs::new(JoinType::Left))
        .sort(["cell", "source", "proxy", "stage", "seed"], SortMultipleOptions::default())
        .collect()
        .context("aggregating per-image rows")?;

    // Gather per-seed statistics per group, then combine seeds.
    let s = |name: &str| -> Result<Vec<String>> {
        Ok(per_seed.column(name)?.str()?.iter().map(|v| v.unwrap_or("").to_string()).collect())
    };
    let f = |name: &str| -> Result<Vec<Option<f64>>> {
        Ok(per_seed.column(name)?.cast(&DataType::Float64)?.f64()?.iter().collect())
    };
    let (cells, sources, proxies, stages) = (s("cell")?, s("source")?, s("proxy")?, s("stage")?);
    let mut per_metric = Vec::new();
    for m in Metric::PER_IMAGE.map(Metric::name) {
        per_metric.push((f(&format!("{m}:mean"))?, f(&format!("{m}:std"))?, f(&format!("{m}:n"))?));
    }
    let split_means: Vec<Vec<Option<f64>>> =
        Metric::SPLIT.iter().map(|m| f(m.name())).collect::<Result<_>>()?;
    let zeros = f("zero_maps")?;

    let mut groups: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for i in 0..per_seed.height() {
        let key = Key {
            cell: cells[i].clone(),
            source: sources[i].clone(),
            proxy: proxies[i].clone(),
            stage: stages[i].clone(),
        };
        groups.entry(key).or_default().push(i);
    }
    let mut out: Vec<Summary> = groups
        .into_iter()
        .map(|(key, idx)| {
            let mut stats = Vec::new();
            let mut images = 0;
            for (mean, std, n) in &per_metric {
                // Student's t 95% half-width over the images of per-seed row `i`.
                let image_ci = |i: usize| {
                    embcam_eval::aggregate::ci95(
                        n[i].unwrap_or(0.0) as usize,
                        std[i].unwrap_or(0.0),
                    )
                    .unwrap_or(0.0)
                };
                let stat = if idx.len() == 1 {
                    let i = idx[0];
                    let n = n[i].unwrap_or(0.0) as usize;
                    images = images.max(n);
                    mean[i].map(|m| {
                        let ci = image_ci(i);
                        Stat { mean: m, spread: ci, n, image_ci: ci }
                    })
                } else {
                    images = images
                        .max(idx.iter().map(|&i| n[i].unwrap_or(0.0) as usize).max().unwrap_or(0));
                    over_seeds(idx.iter().filter_map(|&i| mean[i])).map(|st| Stat {
                        image_ci: idx.iter().map(|&i| image_ci(i)).sum::<f64>() / idx.len() as f64,
                        ..st
                    })
                };
                stats.push(stat);
            }
            for v in &split_means {
                stats.push(over_seeds(idx.iter().filter_map(|&i| v[i])));
            }
            let zero_maps = idx.iter().map(|&i| zeros[i].unwrap_or(0.0) as usize).sum();
            Summary { key, seeds: idx.len(), images, stats, zero_maps }
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
        values[9] = Some(zero as u8 as f64);
        Row { key: k.clone(), seed, image_id: id, values }
    }

    fn frames(rows: &[Row]) -> (DataFrame, DataFrame) {
        let split: Vec<SplitRow> = rows
            .iter()
            .map(|r| SplitRow {
                key: r.key.clone(),
                seed: r.seed,
                values: [Some(0.5 + r.seed as f64 / 10.0), None],
            })
            .collect();
        (rows_frame(rows).expect("rows"), split_frame(&split[..1]).expect("split"))
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
        let (df, split) = frames(&rows);
        let s = summarize(&df, &split, &["center-gaussian"]).expect("summary");
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
        let (df, split) = frames(&rows);
        let s = summarize(&df, &split, &[]).expect("summary");
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
        let (df, split) = frames(&rows);
        let s = summarize(&df, &split, &["uniform-random"]).expect("summary");
        insta::assert_snapshot!(markdown(&s));
        insta::assert_snapshot!(summary_csv(&s).expect("csv"));
    }
}
