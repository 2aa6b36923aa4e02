//! A run folder's data files: written by `embcam run` through the `csv` crate, one serde row per
//! item, and read back by `embcam report` (header checked, every error naming the file and the
//! line). Numbers are written in Rust's shortest round-trip form, so reading them back loses
//! nothing. The metric columns come from [`Metric`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use embcam_eval::Metric;
use serde::{Deserialize, Serialize};

use crate::store::write_atomic;
use crate::table::{self, Key, Row, SplitRow};

/// One point of a localisation-accuracy-vs-τ curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TauPoint {
    /// Group.
    pub key: Key,
    /// Seed.
    pub seed: u64,
    /// Threshold.
    pub tau: f64,
    /// Localisation accuracy at it.
    pub loc_acc: f64,
}

/// One point of the mean deletion and insertion curves of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaithPoint {
    /// Group.
    pub key: Key,
    /// Seed.
    pub seed: u64,
    /// Fraction of pixels removed (deletion) or revealed (insertion).
    pub fraction: f64,
    /// Mean similarity to the true class's proxy after deleting.
    pub deletion: f64,
    /// Mean similarity after inserting.
    pub insertion: f64,
}

/// One training epoch of one cell and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// Grid cell.
    pub cell: String,
    /// Seed.
    pub seed: u64,
    /// Epoch (from 1).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Validation MAP@R.
    pub map_at_r: f64,
    /// Validation Recall@1.
    pub recall_at_1: f64,
}

/// Retrieval quality of one network of one cell and seed on the explained inputs (the
/// evaluation transform the maps see; training's validation may use another transform).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRetrievalPoint {
    /// Grid cell.
    pub cell: String,
    /// Seed.
    pub seed: u64,
    /// `trained` or `untrained`.
    pub network: String,
    /// The transform of the explained inputs (`squash`, `center-crop`).
    pub transform: String,
    /// Recall@1.
    pub recall_at_1: f64,
    /// MAP@R.
    pub map_at_r: f64,
}

/// Everything the tables and plots are made from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportData {
    /// Per-image rows.
    pub rows: Vec<Row>,
    /// Split-level rows.
    pub split: Vec<SplitRow>,
    /// τ curves.
    pub tau: Vec<TauPoint>,
    /// Deletion/insertion curves.
    pub faith: Vec<FaithPoint>,
    /// Training history.
    pub training: Vec<EpochPoint>,
    /// Retrieval on the explained inputs (absent from records and runs made before it existed).
    #[serde(default)]
    pub input_retrieval: Vec<InputRetrievalPoint>,
    /// Names of baseline sources, listed last in tables.
    pub baselines: Vec<String>,
}

impl ReportData {
    /// Append another run's data, its cells prefixed with `label` so runs stay apart.
    pub fn merge(&mut self, label: &str, mut other: ReportData) {
        let relabel = |cell: &mut String| {
            *cell = if cell.is_empty() { label.to_string() } else { format!("{label} {cell}") }
        };
        other.rows.iter_mut().for_each(|r| relabel(&mut r.key.cell));
        other.split.iter_mut().for_each(|r| relabel(&mut r.key.cell));
        other.tau.iter_mut().for_each(|r| relabel(&mut r.key.cell));
        other.faith.iter_mut().for_each(|r| relabel(&mut r.key.cell));
        other.training.iter_mut().for_each(|r| relabel(&mut r.cell));
        other.input_retrieval.iter_mut().for_each(|r| relabel(&mut r.cell));
        self.rows.extend(other.rows);
        self.split.extend(other.split);
        self.tau.extend(other.tau);
        self.faith.extend(other.faith);
        self.training.extend(other.training);
        self.input_retrieval.extend(other.input_retrieval);
        for b in other.baselines {
            if !self.baselines.contains(&b) {
                self.baselines.push(b);
            }
        }
    }
}

/// The key columns of every keyed data file.
const KEY_COLUMNS: [&str; 5] = ["cell", "source", "proxy", "stage", "seed"];

/// A number in Rust's shortest round-trip form (`0.5`, `1`, `1e-7`), as the data files hold them.
struct Num(f64);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The key columns of a row, in [`KEY_COLUMNS`] order.
type KeyFields<'a> = (&'a str, &'a str, &'a str, &'a str, u64);

fn key_fields(k: &Key, seed: u64) -> KeyFields<'_> {
    (&k.cell, &k.source, &k.proxy, &k.stage, seed)
}

/// Write a CSV data file: a header, then one serde row per item.
fn write_rows<R: Serialize>(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for r in rows {
        w.serialize(r)?;
    }
    write_atomic(path, &w.into_inner().context("writing CSV")?)
}

/// Write the data files into the run folder.
pub fn write_data(run: &Path, data: &ReportData) -> Result<()> {
    let mut df = table::rows_frame(&data.rows)?;
    table::write_csv(&mut df, &run.join("metrics.csv"))?;
    table::write_parquet(&mut df, &run.join("metrics.parquet"))?;
    let mut split = table::split_frame(&data.split)?;
    table::write_csv(&mut split, &run.join("split_metrics.csv"))?;
    write_rows(
        &run.join("tau_curves.csv"),
        &[&KEY_COLUMNS[..], &["tau", "loc_acc"]].concat(),
        data.tau.iter().map(|p| (key_fields(&p.key, p.seed), Num(p.tau), Num(p.loc_acc))),
    )?;
    if !data.faith.is_empty() {
        write_rows(
            &run.join("faithfulness_curves.csv"),
            &[&KEY_COLUMNS[..], &["fraction", "deletion", "insertion"]].concat(),
            data.faith.iter().map(|p| {
                (key_fields(&p.key, p.seed), Num(p.fraction), Num(p.deletion), Num(p.insertion))
            }),
        )?;
    }
    write_rows(
        &run.join("training.csv"),
        &TRAINING_COLUMNS,
        data.training
            .iter()
            .map(|p| (&p.cell, p.seed, p.epoch, Num(p.loss), Num(p.map_at_r), Num(p.recall_at_1))),
    )?;
    if !data.input_retrieval.is_empty() {
        write_rows(
            &run.join("input_retrieval.csv"),
            &INPUT_RETRIEVAL_COLUMNS,
            data.input_retrieval.iter().map(|p| {
                (&p.cell, p.seed, &p.network, &p.transform, Num(p.recall_at_1), Num(p.map_at_r))
            }),
        )?;
    }
    Ok(())
}

/// The columns of `input_retrieval.csv`.
const INPUT_RETRIEVAL_COLUMNS: [&str; 6] =
    ["cell", "seed", "network", "transform", "recall_at_1", "map_at_r"];

/// The columns of `training.csv`.
const TRAINING_COLUMNS: [&str; 6] = ["cell", "seed", "epoch", "loss", "map_at_r", "recall_at_1"];

/// The rows of CSV data file `path` after checking its header, each deserialised by `row` from
/// its record (the key columns first for keyed files); `None` when the file is optional and
/// absent. An error names the file and the line.
fn read_rows<T>(
    path: &Path,
    header: &[&str],
    optional: bool,
    row: impl Fn(&csv::StringRecord) -> std::result::Result<T, csv::Error>,
) -> Result<Vec<T>> {
    if optional && !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("reading {} (is this a finished run folder?)", path.display()))?;
    let got: Vec<&str> = reader.headers()?.iter().collect();
    if got != header {
        bail!("{}: header is `{}`, expected `{}`", path.display(), got.join(","), header.join(","));
    }
    let mut out = Vec::new();
    for (i, r) in reader.records().enumerate() {
        let line = i + 2;
        let at = || format!("{} line {line}", path.display());
        out.push(row(&r.with_context(at)?).with_context(at)?);
    }
    Ok(out)
}

/// A record's key columns and the rest, as a record of its own.
fn split_key(
    r: &csv::StringRecord,
) -> std::result::Result<((Key, u64), csv::StringRecord), csv::Error> {
    let n = KEY_COLUMNS.len();
    let head = csv::StringRecord::from(r.iter().take(n).collect::<Vec<_>>());
    let (cell, source, proxy, stage, seed): (String, String, String, String, u64) =
        head.deserialize(None)?;
    let rest = csv::StringRecord::from(r.iter().skip(n).collect::<Vec<_>>());
    Ok(((Key { cell, source, proxy, stage }, seed), rest))
}

/// Read a finished run folder's data files (and its baselines from `manifest.json`).
pub fn read_data(run: &Path) -> Result<ReportData> {
    if !run.join("DONE").is_file() {
        bail!(
            "{} is not a finished run folder (no DONE marker); finish it with `embcam run` first",
            run.display()
        );
    }
    let mut data = ReportData::default();
    let metric_names = Metric::PER_IMAGE.map(Metric::name);
    let header = [&KEY_COLUMNS[..], &["image_id"], &metric_names].concat();
    data.rows = read_rows(&run.join("metrics.csv"), &header, false, |r| {
        let ((key, seed), rest) = split_key(r)?;
        let (image_id, values): (u32, [Option<f64>; Metric::PER_IMAGE.len()]) =
            rest.deserialize(None)?;
        Ok(Row { key, seed, image_id, values })
    })?;
    let split_names = Metric::SPLIT.map(Metric::name);
    let header = [&KEY_COLUMNS[..], &split_names].concat();
    data.split = read_rows(&run.join("split_metrics.csv"), &header, false, |r| {
        let ((key, seed), rest) = split_key(r)?;
        Ok(SplitRow { key, seed, values: rest.deserialize(None)? })
    })?;
    let header = [&KEY_COLUMNS[..], &["tau", "loc_acc"]].concat();
    data.tau = read_rows(&run.join("tau_curves.csv"), &header, false, |r| {
        let ((key, seed), rest) = split_key(r)?;
        let (tau, loc_acc) = rest.deserialize(None)?;
        Ok(TauPoint { key, seed, tau, loc_acc })
    })?;
    let header = [&KEY_COLUMNS[..], &["fraction", "deletion", "insertion"]].concat();
    data.faith = read_rows(&run.join("faithfulness_curves.csv"), &header, true, |r| {
        let ((key, seed), rest) = split_key(r)?;
        let (fraction, deletion, insertion) = rest.deserialize(None)?;
        Ok(FaithPoint { key, seed, fraction, deletion, insertion })
    })?;
    data.training = read_rows(&run.join("training.csv"), &TRAINING_COLUMNS, false, |r| {
        let (cell, seed, epoch, loss, map_at_r, recall_at_1) = r.deserialize(None)?;
        Ok(EpochPoint { cell, seed, epoch, loss, map_at_r, recall_at_1 })
    })?;
    data.input_retrieval =
        read_rows(&run.join("input_retrieval.csv"), &INPUT_RETRIEVAL_COLUMNS, true, |r| {
            let (cell, seed, network, transform, recall_at_1, map_at_r) = r.deserialize(None)?;
            Ok(InputRetrievalPoint { cell, seed, network, transform, recall_at_1, map_at_r })
        })?;
    let manifest_path = run.join("manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest_path.display()))?;
    data.baselines = manifest["baselines"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b.as_str().map(String::from)).collect())
        .unwrap_or_default();
    check_metrics_rows(&run.join("metrics.csv"), &data.rows, &manifest)?;
    Ok(data)
}

/// A `metrics.csv` cut at a line boundary, or holding only its header, parses; check it against
/// the number of rows the run wrote (`metrics_rows` in `manifest.json`). Manifests of older runs
/// lack it: then the file must hold rows, as many images for every method of a cell and seed.
fn check_metrics_rows(path: &Path, rows: &[Row], manifest: &serde_json::Value) -> Result<()> {
    let damaged = |what: String| {
        anyhow::anyhow!(
            "{} {what}: it was cut or edited after the run. Restore it from a copy of the run \
             folder, or run the experiment again (`embcam run FILE` makes a new run folder)",
            path.display()
        )
    };
    if let Some(written) = manifest["metrics_rows"].as_u64() {
        if rows.len() as u64 != written {
            return Err(damaged(format!(
                "holds {} rows, but the run wrote {written} (manifest.json `metrics_rows`)",
                rows.len()
            )));
        }
        return Ok(());
    }
    if rows.is_empty() {
        return Err(damaged("holds only its header".into()));
    }
    let mut per_key: BTreeMap<(&str, u64), BTreeMap<&Key, usize>> = BTreeMap::new();
    for r in rows {
        *per_key.entry((&r.key.cell, r.seed)).or_default().entry(&r.key).or_default() += 1;
    }
    for ((cell, seed), keys) in &per_key {
        let (min, max) = (keys.values().min(), keys.values().max());
        if min != max {
            return Err(damaged(format!(
                "holds {} to {} images for the methods of cell `{cell}` seed {seed}",
                min.unwrap_or(&0),
                max.unwrap_or(&0)
            )));
        }
    }
    Ok(())
}
