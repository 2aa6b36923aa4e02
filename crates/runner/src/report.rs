//! A run folder's data and its views. `embcam run` writes the data files (per-image metrics,
//! split-level metrics, curves, training history) and then renders the views (summary tables,
//! plots) from them; `embcam report` reads the data files of one or more finished runs back and
//! renders the same views, so a report made later is identical to the one the run printed.
//!
//! Data files of a run folder:
//!
//! | file | columns |
//! |---|---|
//! | `metrics.csv` / `.parquet` | `cell,source,proxy,stage,seed,image_id,` then the metrics |
//! | `split_metrics.csv` | `cell,source,proxy,stage,seed,maxboxacc_v2,pxap` |
//! | `tau_curves.csv` | `cell,source,proxy,stage,seed,tau,loc_acc` |
//! | `faithfulness_curves.csv` | `cell,source,proxy,stage,seed,fraction,deletion,insertion` |
//! | `training.csv` | `cell,seed,epoch,loss,map_at_r,recall_at_1` |
//!
//! Numbers are written in Rust's shortest round-trip form, so reading them back loses nothing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::plots;
use crate::store::write_atomic;
use crate::table::{self, Key, METRICS, Row, SPLIT_METRICS, SplitRow};

/// One point of a localisation-accuracy-vs-τ curve.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

/// Everything the tables and plots are made from.
#[derive(Debug, Clone, Default)]
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
        self.rows.extend(other.rows);
        self.split.extend(other.split);
        self.tau.extend(other.tau);
        self.faith.extend(other.faith);
        self.training.extend(other.training);
        for b in other.baselines {
            if !self.baselines.contains(&b) {
                self.baselines.push(b);
            }
        }
    }
}

/// The CSV header of the key columns.
const KEY_HEADER: &str = "cell,source,proxy,stage,seed";

fn key_fields(k: &Key, seed: u64) -> String {
    format!(
        "{},{},{},{},{seed}",
        field(&k.cell),
        field(&k.source),
        field(&k.proxy),
        field(&k.stage)
    )
}

/// A CSV field, quoted when it holds a comma, a quote or a newline.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.into() }
}

/// Write the data files into the run folder.
pub fn write_data(run: &Path, data: &ReportData) -> Result<()> {
    let mut df = table::rows_frame(&data.rows)?;
    table::write_csv(&mut df, &run.join("metrics.csv"))?;
    table::write_parquet(&mut df, &run.join("metrics.parquet"))?;
    let mut split = table::split_frame(&data.split)?;
    table::write_csv(&mut split, &run.join("split_metrics.csv"))?;
    let mut tau = format!("{KEY_HEADER},tau,loc_acc\n");
    for p in &data.tau {
        tau.push_str(&format!("{},{},{}\n", key_fields(&p.key, p.seed), p.tau, p.loc_acc));
    }
    write_atomic(&run.join("tau_curves.csv"), tau.as_bytes())?;
    if !data.faith.is_empty() {
        let mut f = format!("{KEY_HEADER},fraction,deletion,insertion\n");
        for p in &data.faith {
            let k = key_fields(&p.key, p.seed);
            f.push_str(&format!("{k},{},{},{}\n", p.fraction, p.deletion, p.insertion));
        }
        write_atomic(&run.join("faithfulness_curves.csv"), f.as_bytes())?;
    }
    let mut t = String::from("cell,seed,epoch,loss,map_at_r,recall_at_1\n");
    for p in &data.training {
        t.push_str(&format!(
            "{},{},{},{},{},{}\n",
            field(&p.cell),
            p.seed,
            p.epoch,
            p.loss,
            p.map_at_r,
            p.recall_at_1
        ));
    }
    write_atomic(&run.join("training.csv"), t.as_bytes())
}

/// The CSV records of `path` after checking its header; `None` when the file is optional and
/// absent.
fn records(
    path: &Path,
    header: &str,
    optional: bool,
) -> Result<Option<Vec<(u64, csv::StringRecord)>>> {
    if optional && !path.exists() {
        return Ok(None);
    }
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("reading {} (is this a finished run folder?)", path.display()))?;
    let got: Vec<&str> = reader.headers()?.iter().collect();
    if got.join(",") != header {
        bail!("{}: header is `{}`, expected `{header}`", path.display(), got.join(","));
    }
    let mut out = Vec::new();
    for (i, r) in reader.records().enumerate() {
        let line = i as u64 + 2;
        out.push((line, r.with_context(|| format!("{} line {line}", path.display()))?));
    }
    Ok(Some(out))
}

/// Field `i` of a record, parsed; an error names the file, the line and the column.
fn parse<T: std::str::FromStr>(
    path: &Path,
    line: u64,
    r: &csv::StringRecord,
    i: usize,
    name: &str,
) -> Result<T> {
    let v = r.get(i).unwrap_or_default();
    v.parse().map_err(|_| {
        anyhow::anyhow!("{} line {line}: column {name} holds `{v}`, not a number", path.display())
    })
}

/// An optional number (empty field = not applicable).
fn parse_opt(
    path: &Path,
    line: u64,
    r: &csv::StringRecord,
    i: usize,
    name: &str,
) -> Result<Option<f64>> {
    if r.get(i).unwrap_or_default().is_empty() {
        Ok(None)
    } else {
        parse(path, line, r, i, name).map(Some)
    }
}

fn key_of(path: &Path, line: u64, r: &csv::StringRecord) -> Result<(Key, u64)> {
    let s = |i: usize| r.get(i).unwrap_or_default().to_string();
    Ok((
        Key { cell: s(0), source: s(1), proxy: s(2), stage: s(3) },
        parse(path, line, r, 4, "seed")?,
    ))
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
    let path = run.join("metrics.csv");
    let header = format!("{KEY_HEADER},image_id,{}", METRICS.join(","));
    for (line, r) in records(&path, &header, false)?.unwrap_or_default() {
        let (key, seed) = key_of(&path, line, &r)?;
        let mut values = [None; METRICS.len()];
        for (m, v) in values.iter_mut().enumerate() {
            *v = parse_opt(&path, line, &r, 6 + m, METRICS[m])?;
        }
        data.rows.push(Row { key, seed, image_id: parse(&path, line, &r, 5, "image_id")?, values });
    }
    let path = run.join("split_metrics.csv");
    for (line, r) in records(&path, &format!("{KEY_HEADER},{}", SPLIT_METRICS.join(",")), false)?
        .unwrap_or_default()
    {
        let (key, seed) = key_of(&path, line, &r)?;
        let values = [
            parse_opt(&path, line, &r, 5, SPLIT_METRICS[0])?,
            parse_opt(&path, line, &r, 6, SPLIT_METRICS[1])?,
        ];
        data.split.push(SplitRow { key, seed, values });
    }
    let path = run.join("tau_curves.csv");
    for (line, r) in
        records(&path, &format!("{KEY_HEADER},tau,loc_acc"), false)?.unwrap_or_default()
    {
        let (key, seed) = key_of(&path, line, &r)?;
        let (tau, loc_acc) =
            (parse(&path, line, &r, 5, "tau")?, parse(&path, line, &r, 6, "loc_acc")?);
        data.tau.push(TauPoint { key, seed, tau, loc_acc });
    }
    let path = run.join("faithfulness_curves.csv");
    for (line, r) in records(&path, &format!("{KEY_HEADER},fraction,deletion,insertion"), true)?
        .unwrap_or_default()
    {
        let (key, seed) = key_of(&path, line, &r)?;
        data.faith.push(FaithPoint {
            key,
            seed,
            fraction: parse(&path, line, &r, 5, "fraction")?,
            deletion: parse(&path, line, &r, 6, "deletion")?,
            insertion: parse(&path, line, &r, 7, "insertion")?,
        });
    }
    let path = run.join("training.csv");
    for (line, r) in
        records(&path, "cell,seed,epoch,loss,map_at_r,recall_at_1", false)?.unwrap_or_default()
    {
        data.training.push(EpochPoint {
            cell: r.get(0).unwrap_or_default().to_string(),
            seed: parse(&path, line, &r, 1, "seed")?,
            epoch: parse(&path, line, &r, 2, "epoch")?,
            loss: parse(&path, line, &r, 3, "loss")?,
            map_at_r: parse(&path, line, &r, 4, "map_at_r")?,
            recall_at_1: parse(&path, line, &r, 5, "recall_at_1")?,
        });
    }
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
    Ok(data)
}

/// Mean over seeds of curves given per (cell, series, seed): `(series label, points)` per cell.
fn mean_over_seeds<P>(
    points: &[P],
    cell_of: impl Fn(&P) -> &str,
    series_of: impl Fn(&P) -> String,
    xy: impl Fn(&P) -> (f64, f64),
) -> BTreeMap<String, Vec<plots::Series>> {
    // cell → series → x (as bits, to group exactly) → (x, sum of y, n)
    type Sums = BTreeMap<u64, (f64, f64, usize)>;
    let mut acc: BTreeMap<String, BTreeMap<String, Sums>> = BTreeMap::new();
    for p in points {
        let (x, y) = xy(p);
        let e = acc
            .entry(cell_of(p).to_string())
            .or_default()
            .entry(series_of(p))
            .or_default()
            .entry(x.to_bits())
            .or_insert((x, 0.0, 0));
        e.1 += y;
        e.2 += 1;
    }
    acc.into_iter()
        .map(|(cell, series)| {
            let lines = series
                .into_iter()
                .map(|(label, pts)| {
                    let mut v: Vec<(f64, f64)> =
                        pts.into_values().map(|(x, s, n)| (x, s / n as f64)).collect();
                    v.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (label, v)
                })
                .collect();
            (cell, lines)
        })
        .collect()
}

fn series_label(k: &Key) -> String {
    table::source_label(&k.source, &k.proxy)
}

/// `-cellN` for the N-th of several cells, nothing for one.
fn cell_suffix(i: usize, n: usize) -> String {
    if n > 1 { format!("-cell{}", i + 1) } else { String::new() }
}

fn titled(title: &str, cell: &str) -> String {
    if cell.is_empty() { title.to_string() } else { format!("{title} ({cell})") }
}

/// One line chart per cell: `<dir>/<name>[-cellN].png`.
fn per_cell(
    dir: &Path,
    name: &str,
    title: &str,
    (x, y): (&str, &str),
    cells: &BTreeMap<String, Vec<plots::Series>>,
) -> Result<()> {
    for (ci, (cell, series)) in cells.iter().enumerate() {
        let file = dir.join(format!("{name}{}.png", cell_suffix(ci, cells.len())));
        plots::lines(&file, &titled(title, cell), x, y, series)?;
    }
    Ok(())
}

/// Write `summary.md`, `summary.csv` and `plots/` into `out` from `data`; returns the markdown.
pub fn render(out: &Path, data: &ReportData) -> Result<String> {
    let df = table::rows_frame(&data.rows)?;
    let split = table::split_frame(&data.split)?;
    let baselines: Vec<&str> = data.baselines.iter().map(String::as_str).collect();
    let summaries = table::summarize(&df, &split, &baselines)?;
    let mut md = retrieval_markdown(&data.training);
    if !md.is_empty() {
        md.push_str("\n## Explanations\n\n");
    }
    md.push_str(&table::markdown(&summaries));
    write_atomic(&out.join("summary.md"), md.as_bytes())?;
    write_atomic(&out.join("summary.csv"), table::summary_csv(&summaries)?.as_bytes())?;
    let comparisons = crate::compare::comparisons(&data.rows, &baselines)?;
    write_atomic(&out.join("comparisons.md"), crate::compare::markdown(&comparisons).as_bytes())?;
    write_atomic(&out.join("comparisons.csv"), crate::compare::csv(&comparisons)?.as_bytes())?;

    let plots_dir = out.join("plots");
    let mut cells: Vec<String> = summaries.iter().map(|s| s.key.cell.clone()).collect();
    cells.dedup();
    for (ci, cell) in cells.iter().enumerate() {
        let suffix = cell_suffix(ci, cells.len());
        let of_cell: Vec<&table::Summary> =
            summaries.iter().filter(|s| &s.key.cell == cell).collect();
        for (metric, area, name, title) in [
            (0, 1, "box_ratio", "Mean heatmap ratio in the box"),
            (2, 3, "mask_ratio", "Mean heatmap ratio in the mask"),
            (5, 5, "loc_acc", "Localisation accuracy"),
        ] {
            let bars: Vec<plots::Bar> = of_cell
                .iter()
                .filter_map(|s| {
                    s.stats[metric].map(|st| (series_label(&s.key), st.mean, st.spread))
                })
                .collect();
            if bars.is_empty() {
                continue;
            }
            let reference = (area != metric)
                .then(|| of_cell.iter().find_map(|s| s.stats[area].map(|st| st.mean)))
                .flatten()
                .map(|v| (v, "uniform map"));
            plots::bars(
                &plots_dir.join(format!("{name}{suffix}.png")),
                &titled(title, cell),
                "mean ± 95% CI",
                &bars,
                reference,
            )?;
        }
    }
    comparison_plots(&plots_dir, &comparisons)?;
    let n_seeds = data.rows.iter().map(|r| r.seed).collect::<std::collections::BTreeSet<_>>().len();
    let note = if n_seeds > 1 { " (mean over seeds)" } else { "" };
    let tau = mean_over_seeds(
        &data.tau,
        |p| &p.key.cell,
        |p| series_label(&p.key),
        |p| (p.tau, p.loc_acc),
    );
    per_cell(
        &plots_dir,
        "loc_acc_vs_tau",
        &format!("Localisation accuracy vs τ{note}"),
        ("τ", "accuracy"),
        &tau,
    )?;
    for (name, title, pick) in [
        (
            "deletion",
            "Deletion: similarity to the class proxy",
            (|p: &FaithPoint| p.deletion) as fn(&FaithPoint) -> f64,
        ),
        ("insertion", "Insertion: similarity to the class proxy", |p: &FaithPoint| p.insertion),
    ] {
        let curves = mean_over_seeds(
            &data.faith,
            |p| &p.key.cell,
            |p| series_label(&p.key),
            |p| (p.fraction, pick(p)),
        );
        per_cell(
            &plots_dir,
            name,
            &format!("{title}{note}"),
            ("fraction of pixels", "y(x')·p"),
            &curves,
        )?;
    }
    if !data.training.is_empty() {
        let run_label = |p: &EpochPoint| {
            if p.cell.is_empty() {
                format!("seed {}", p.seed)
            } else {
                format!("{} seed {}", p.cell, p.seed)
            }
        };
        let mut loss: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut map: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for p in &data.training {
            loss.entry(format!("loss, {}", run_label(p)))
                .or_default()
                .push((p.epoch as f64, p.loss));
            map.entry(format!("MAP@R, {}", run_label(p)))
                .or_default()
                .push((p.epoch as f64, p.map_at_r));
        }
        plots::lines(
            &plots_dir.join("training_loss.png"),
            "Training loss",
            "epoch",
            "loss",
            &loss.into_iter().collect::<Vec<_>>(),
        )?;
        plots::lines(
            &plots_dir.join("training_map_at_r.png"),
            "Validation MAP@R",
            "epoch",
            "MAP@R",
            &map.into_iter().collect::<Vec<_>>(),
        )?;
    }
    Ok(md)
}

/// The checkpoint each (cell, seed) explains: the epoch with the best validation MAP@R (the first
/// of equals), as training selects it.
fn explained_epochs(training: &[EpochPoint]) -> Vec<&EpochPoint> {
    let mut best: BTreeMap<(&str, u64), &EpochPoint> = BTreeMap::new();
    for p in training {
        let e = best.entry((p.cell.as_str(), p.seed)).or_insert(p);
        if p.map_at_r > e.map_at_r {
            *e = p;
        }
    }
    best.into_values().collect()
}

/// The retrieval quality of the explained networks, per seed and mean ± sd over seeds: nobody
/// should read an explanation table without knowing how good the network was.
fn retrieval_markdown(training: &[EpochPoint]) -> String {
    let best = explained_epochs(training);
    if best.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "## Retrieval quality of the explained networks (evaluation split)\n\n\
         The checkpoint explained is each seed's best epoch by validation MAP@R.\n\n\
         | cell | seed | epoch | Recall@1 | MAP@R |\n|---|---|---|---|---|\n",
    );
    let mut cells: BTreeMap<&str, Vec<&EpochPoint>> = BTreeMap::new();
    for p in &best {
        out.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} |\n",
            p.cell, p.seed, p.epoch, p.recall_at_1, p.map_at_r
        ));
        cells.entry(p.cell.as_str()).or_default().push(p);
    }
    for (cell, ps) in cells.iter().filter(|(_, ps)| ps.len() > 1) {
        let stat = |f: fn(&EpochPoint) -> f64| {
            table::over_seeds(ps.iter().map(|p| f(p)))
                .map_or(String::new(), |st| format!("{:.3} ± {:.3}", st.mean, st.spread))
        };
        out.push_str(&format!(
            "| {cell} | mean ± sd over {} seeds | | {} | {} |\n",
            ps.len(),
            stat(|p| p.recall_at_1),
            stat(|p| p.map_at_r)
        ));
    }
    out
}

/// One figure per compared metric: the mean difference of every comparison with half its
/// bootstrap interval as the error bar, against the zero line.
fn comparison_plots(dir: &Path, cs: &[crate::compare::Comparison]) -> Result<()> {
    for (metric, label) in crate::compare::COMPARED {
        let bars: Vec<plots::Bar> = cs
            .iter()
            .filter(|c| c.metric == metric)
            .map(|c| {
                let name = table::source_label;
                let cell = if c.cell.is_empty() { String::new() } else { format!("{}: ", c.cell) };
                (
                    format!(
                        "{cell}{} − {}",
                        name(&c.a_source, &c.a_proxy),
                        name(&c.b_source, &c.b_proxy)
                    ),
                    c.mean_diff,
                    (c.ci_high - c.ci_low) / 2.0,
                )
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        plots::bars(
            &dir.join(format!("compare_{metric}.png")),
            &format!("Paired differences, {label}"),
            "A − B (mean over images, ± half the bootstrap 95% interval)",
            &bars,
            Some((0.0, "no difference")),
        )?;
    }
    Ok(())
}
