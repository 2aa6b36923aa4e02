//! The benchmark's views (`[benchmark]`): the part-level ground-truth table and the model
//! randomisation table, each as markdown and CSV, plus the per-image ground-truth rows and the
//! randomisation curve.
//!
//! | file | what |
//! |---|---|
//! | `ground_truth_metrics.csv` | `cell,source,proxy,stage,seed,image_id,` then [`value_columns`]: [`PartMetric::ALL`], then [`PerPart::ALL`] per CUB part |
//! | `ground_truth.md` / `.csv` | per map source: mean over images, ± as `summary.md` |
//! | `plots/part_importance.png` | per part: mean score drop when removed, per proxy; mean share of each map source's mass, beside the area share |
//! | `randomisation_metrics.csv` | `cell,seed,step,layers,method,proxy,stage,images,spearman,ssim`: one row per seed |
//! | `randomisation.md` / `.csv` | per step × method × proxy × stage: mean ρ and SSIM, passes |
//! | `plots/randomisation.png` | mean ρ against the layers randomised, cascading steps |
//!
//! The two `*_metrics.csv` files are the data: [`read`] reads them back, so `embcam report`
//! rebuilds every other file here from a run folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use embcam_cub::PART_NAMES;
use embcam_eval::sanity::RANDOMISATION_MAX_SPEARMAN;
use embcam_eval::{PartMass, PartMetric, Summary};

use crate::pipeline::SanityRow;
use crate::plots;
use crate::store::write_atomic;
use crate::table::{self, Key, Stat};

/// One image's part-level values for one map source.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GtRow {
    /// Group keys.
    pub key: Key,
    /// Seed.
    pub seed: u64,
    /// Image id.
    pub image_id: u32,
    /// In [`value_columns`] order: [`PartMetric::ALL`], then [`PerPart::ALL`] for each CUB part
    /// (rows of older runs stop after the [`PartMetric`] values).
    pub values: Vec<Option<f64>>,
}

/// A per-part value of a ground-truth row, kept for the per-part importance plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerPart {
    /// The map's mass share on the part's region ([`PartMass::mass_share`]).
    MassShare,
    /// The region's area share: a uniform map's mass share.
    AreaShare,
    /// `s(x) − s(x without the part)`, the target score's drop when the part is removed.
    ScoreDrop,
}

impl PerPart {
    /// Every per-part value, in column order within a part.
    pub const ALL: [PerPart; 3] = [PerPart::MassShare, PerPart::AreaShare, PerPart::ScoreDrop];

    fn name(self) -> &'static str {
        match self {
            PerPart::MassShare => "mass_share",
            PerPart::AreaShare => "area_share",
            PerPart::ScoreDrop => "score_drop",
        }
    }

    /// Where part `part`'s (1..=15) value sits in [`GtRow::values`].
    pub fn at(self, part: u32) -> usize {
        PartMetric::ALL.len() + (part as usize - 1) * PerPart::ALL.len() + self as usize
    }
}

/// The value columns of `ground_truth_metrics.csv`: the [`PartMetric`] names, then
/// `mass_share_<part>`, `area_share_<part>`, `score_drop_<part>` for each CUB part
/// (`left_wing`, ...).
pub fn value_columns() -> Vec<String> {
    let mut v: Vec<String> = PartMetric::ALL.iter().map(|m| m.name().to_string()).collect();
    for part in PART_NAMES {
        let part = part.replace(' ', "_");
        v.extend(PerPart::ALL.iter().map(|p| format!("{}_{part}", p.name())));
    }
    v
}

/// One map's row values: `metrics` (in [`PartMetric::ALL`] order), then [`PerPart::ALL`] of each
/// part from `masses` (empty regions: `None`) and `drops` (`(part, s(x) − s(x without it))`).
pub fn row_values(
    metrics: Vec<Option<f64>>,
    masses: &[(u32, PartMass)],
    drops: &[(u32, f64)],
) -> Vec<Option<f64>> {
    let mut v = metrics;
    v.resize(value_columns().len(), None);
    for (part, m) in masses {
        v[PerPart::MassShare.at(*part)] = Some(m.mass_share);
        v[PerPart::AreaShare.at(*part)] = Some(m.area_share);
    }
    for &(part, drop) in drops {
        v[PerPart::ScoreDrop.at(part)] = Some(drop);
    }
    v
}

/// One randomisation row of one cell and seed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SanityPoint {
    /// Grid cell label.
    pub cell: String,
    /// Seed.
    pub seed: u64,
    /// The stage's row.
    pub row: SanityRow,
}

/// A metric over seeds from per-seed values `(mean, image CI, n)`: the mean ± sd over seeds
/// ([`table::over_seeds`]; for one seed the spread is its image CI), images summed, the mean image
/// CI.
fn over_seeds(per_seed: &[(f64, f64, usize)]) -> Option<Stat> {
    let mut st = table::over_seeds(per_seed.iter().map(|s| s.0))?;
    st.image_ci = per_seed.iter().map(|s| s.1).sum::<f64>() / per_seed.len() as f64;
    if per_seed.len() == 1 {
        st.spread = st.image_ci;
    }
    st.n = per_seed.iter().map(|s| s.2).sum();
    Some(st)
}

/// Write `ground_truth_metrics.csv`, `ground_truth.md`, `ground_truth.csv` and
/// `plots/part_importance.png` into `out`;
/// returns the markdown. Map baselines (named in `baselines`) sort last.
pub fn write_ground_truth(out: &Path, rows: &[GtRow], baselines: &[String]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head: Vec<String> = ["cell", "source", "proxy", "stage", "seed", "image_id"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let columns = value_columns();
    head.extend(columns.iter().cloned());
    w.write_record(&head)?;
    for r in rows {
        let mut rec = vec![
            r.key.cell.clone(),
            r.key.source.clone(),
            r.key.proxy.clone(),
            r.key.stage.clone(),
            r.seed.to_string(),
            r.image_id.to_string(),
        ];
        rec.extend((0..columns.len()).map(|i| {
            r.values.get(i).copied().flatten().map(|x| x.to_string()).unwrap_or_default()
        }));
        w.write_record(&rec)?;
    }
    write_atomic(&out.join("ground_truth_metrics.csv"), &w.into_inner()?)?;
    part_importance_plots(&out.join("plots"), rows, baselines)?;

    // key → seed → rows
    let mut groups: BTreeMap<(bool, Key), BTreeMap<u64, Vec<&GtRow>>> = BTreeMap::new();
    for r in rows {
        let baseline = baselines.contains(&r.key.source);
        groups.entry((baseline, r.key.clone())).or_default().entry(r.seed).or_default().push(r);
    }
    let has_cells = rows.iter().any(|r| !r.key.cell.is_empty());
    let mut md = String::new();
    let mut head = vec![];
    if has_cells {
        head.push("cell");
    }
    head.extend(["method", "proxy", "stage", "seeds", "images"]);
    head.extend(PartMetric::ALL.iter().map(|m| m.label()));
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut chead: Vec<String> = ["cell", "method", "proxy", "stage", "seeds", "images"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in PartMetric::ALL {
        let n = m.name();
        chead.extend([format!("{n}_mean"), format!("{n}_spread"), format!("{n}_n")]);
        chead.push(format!("{n}_image_ci"));
    }
    w.write_record(&chead)?;
    for ((_, key), seeds) in &groups {
        let images = seeds.values().map(Vec::len).max().unwrap_or(0);
        let stats: Vec<Option<Stat>> = (0..PartMetric::ALL.len())
            .map(|i| {
                let per_seed: Vec<(f64, f64, usize)> = seeds
                    .values()
                    .filter_map(|rs| {
                        let v: Vec<f64> = rs.iter().filter_map(|r| r.values[i]).collect();
                        Summary::of(&v).map(|s| (s.mean, s.ci95.unwrap_or(0.0), s.n))
                    })
                    .collect();
                over_seeds(&per_seed)
            })
            .collect();
        let mut cells = vec![];
        if has_cells {
            cells.push(key.cell.clone());
        }
        cells.extend([key.source.clone(), key.proxy.clone(), key.stage.clone()]);
        cells.extend([seeds.len().to_string(), images.to_string()]);
        let mut rec = vec![key.cell.clone()];
        rec.extend(cells[usize::from(has_cells)..].iter().cloned());
        cells.extend(stats.iter().map(|s| table::cell_text(s.as_ref(), seeds.len())));
        let _ = writeln!(md, "| {} |", cells.join(" | "));
        for st in &stats {
            rec.extend(table::stat_fields(st.as_ref()));
        }
        w.write_record(&rec)?;
    }
    write_atomic(&out.join("ground_truth.csv"), &w.into_inner()?)?;
    write_atomic(&out.join("ground_truth.md"), md.as_bytes())?;
    Ok(md)
}

/// Write `randomisation_metrics.csv`, `randomisation.md`, `randomisation.csv` and
/// `plots/randomisation.png` into `out`;
/// returns the markdown. Each row is the mean over seeds; with several seeds ± is the sd.
pub fn write_randomisation(out: &Path, points: &[SanityPoint]) -> Result<String> {
    // (cell, step order, step, layers, method, proxy, stage) → per-seed (ρ, SSIM, images)
    type Group = (String, usize, String, usize, String, String, String);
    let mut order: Vec<String> = Vec::new();
    for p in points {
        if !order.contains(&p.row.step) {
            order.push(p.row.step.clone());
        }
    }
    let mut groups: BTreeMap<Group, Vec<(f64, f64, usize)>> = BTreeMap::new();
    for p in points {
        let r = &p.row;
        let at = order.iter().position(|s| *s == r.step).unwrap_or(0);
        let g = (
            p.cell.clone(),
            at,
            r.step.clone(),
            r.layers,
            r.method.clone(),
            r.proxy.clone(),
            r.stage.clone(),
        );
        groups.entry(g).or_default().push((r.spearman, r.ssim, r.images));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for p in points {
        w.serialize(SanityRecord::from(p))?;
    }
    write_atomic(&out.join("randomisation_metrics.csv"), &w.into_inner()?)?;
    let has_cells = points.iter().any(|p| !p.cell.is_empty());
    let mut md = String::new();
    let mut head = vec![];
    if has_cells {
        head.push("cell");
    }
    head.extend([
        "step",
        "layers randomised",
        "method",
        "proxy",
        "stage",
        "seeds",
        "images",
        "Spearman ρ",
        "SSIM",
        "passes (ρ < 0.5)",
    ]);
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "cell",
        "step",
        "layers",
        "method",
        "proxy",
        "stage",
        "seeds",
        "images",
        "spearman_mean",
        "spearman_sd",
        "ssim_mean",
        "ssim_sd",
        "passes",
    ])?;
    let mut curves: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>> = BTreeMap::new();
    for ((cell, _, step, layers, method, proxy, stage), v) in &groups {
        let rho_st = table::over_seeds(v.iter().map(|x| x.0)).unwrap_or_default();
        let ssim_st = table::over_seeds(v.iter().map(|x| x.1)).unwrap_or_default();
        let (rho, rho_sd, ssim, ssim_sd) =
            (rho_st.mean, rho_st.spread, ssim_st.mean, ssim_st.spread);
        let passes = rho < RANDOMISATION_MAX_SPEARMAN;
        let images = v.iter().map(|x| x.2).max().unwrap_or(0);
        let key = [
            step.clone(),
            layers.to_string(),
            method.clone(),
            proxy.clone(),
            stage.clone(),
            v.len().to_string(),
            images.to_string(),
        ];
        let pm = |m: f64, s: f64| {
            if v.len() > 1 { format!("{m:.3} ± {s:.3}") } else { format!("{m:.3}") }
        };
        let mut cells: Vec<String> = if has_cells { vec![cell.clone()] } else { vec![] };
        cells.extend(key.iter().cloned());
        cells.extend([
            pm(rho, rho_sd),
            pm(ssim, ssim_sd),
            if passes { "yes" } else { "no" }.into(),
        ]);
        let _ = writeln!(md, "| {} |", cells.join(" | "));
        let mut rec = vec![cell.clone()];
        rec.extend(key);
        rec.extend([
            format!("{rho:.6}"),
            format!("{rho_sd:.6}"),
            format!("{ssim:.6}"),
            format!("{ssim_sd:.6}"),
            passes.to_string(),
        ]);
        w.write_record(&rec)?;
        if step.starts_with("cascade:") {
            let series = format!("{} @ {stage}", table::source_label(method, proxy));
            curves
                .entry(cell.clone())
                .or_default()
                .entry(series)
                .or_default()
                .push((*layers as f64, rho));
        }
    }
    write_atomic(&out.join("randomisation.csv"), &w.into_inner()?)?;
    write_atomic(&out.join("randomisation.md"), md.as_bytes())?;
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir)?;
    let n = curves.len();
    for (i, (cell, series)) in curves.into_iter().enumerate() {
        let series: Vec<plots::Series> = series
            .into_iter()
            .map(|(label, mut pts)| {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (label, pts)
            })
            .collect();
        let suffix = if n > 1 { format!("-cell{}", i + 1) } else { String::new() };
        let title = if cell.is_empty() {
            "Cascading randomisation".to_string()
        } else {
            format!("Cascading randomisation ({cell})")
        };
        let file = dir.join(format!("randomisation{suffix}.png"));
        plots::lines(&file, &title, "layers randomised (from the head)", "Spearman ρ", &series)?;
    }
    Ok(md)
}

/// Mean of the values given: `None` for none.
#[derive(Default, Clone, Copy)]
struct Mean(f64, usize);

impl Mean {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.0 += v;
            self.1 += 1;
        }
    }
    fn get(self) -> Option<f64> {
        (self.1 > 0).then(|| self.0 / self.1 as f64)
    }
}

/// Per-part means of rows: `[part 1..=15]` of one [`PerPart`] value.
fn part_means<'a>(rows: impl Iterator<Item = &'a GtRow>, what: PerPart) -> [Mean; 15] {
    let mut m = [Mean::default(); 15];
    for r in rows {
        for (k, mean) in m.iter_mut().enumerate() {
            mean.add(r.values.get(what.at(k as u32 + 1)).copied().flatten());
        }
    }
    m
}

/// `plots/part_importance[-cellN].png`, one per cell: per CUB part, the mean target-score drop
/// when the part is removed (one bar per proxy) above the mean share of each map source's mass on
/// the part, beside the part's area share (what a uniform map gets); parts sorted by the first
/// proxy's drop. Nothing for rows without per-part values (runs made before they were kept).
fn part_importance_plots(dir: &Path, rows: &[GtRow], baselines: &[String]) -> Result<()> {
    let mut cells: BTreeMap<&str, Vec<&GtRow>> = BTreeMap::new();
    for r in rows {
        cells.entry(r.key.cell.as_str()).or_default().push(r);
    }
    let n_cells = cells.len();
    for (ci, (cell, rows)) in cells.into_iter().enumerate() {
        // What the model uses: the drops of each proxy's own rows (every method has the same).
        let mut by_proxy: BTreeMap<&str, Vec<&GtRow>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.key.proxy != "-" && !baselines.contains(&r.key.source)) {
            by_proxy.entry(r.key.proxy.as_str()).or_default().push(r);
        }
        if by_proxy.is_empty() {
            by_proxy.insert("first proxy", rows.clone());
        }
        let drops: Vec<(String, [Mean; 15])> = by_proxy
            .into_iter()
            .map(|(p, rs)| (p.to_string(), part_means(rs.into_iter(), PerPart::ScoreDrop)))
            .collect();
        let area = part_means(rows.iter().copied(), PerPart::AreaShare);
        let stages: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.key.stage.as_str()).filter(|s| *s != "-").collect();
        let mut sources: BTreeMap<(bool, &Key), Vec<&GtRow>> = BTreeMap::new();
        for r in &rows {
            sources.entry((baselines.contains(&r.key.source), &r.key)).or_default().push(r);
        }
        let masses: Vec<(bool, String, [Mean; 15])> = sources
            .into_iter()
            .map(|((baseline, k), rs)| {
                let mut label = table::source_label(&k.source, &k.proxy);
                if stages.len() > 1 && k.stage != "-" {
                    label = format!("{label} @ {}", k.stage);
                }
                (baseline, label, part_means(rs.into_iter(), PerPart::MassShare))
            })
            .collect();
        // The parts with data, the most important (first proxy's drop) first.
        let mut parts: Vec<usize> = (0..15)
            .filter(|&k| area[k].get().is_some() || drops.iter().any(|d| d.1[k].get().is_some()))
            .collect();
        if parts.is_empty() {
            continue;
        }
        let key = |k: &usize| drops.first().and_then(|d| d.1[*k].get()).unwrap_or(f64::MIN);
        parts.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
        let pick = |m: &[Mean; 15]| parts.iter().map(|&k| m[k].get()).collect::<Vec<_>>();
        let top = plots::Panel {
            y_label: "mean drop of the target score when removed".into(),
            series: drops
                .iter()
                .enumerate()
                .map(|(i, (p, m))| plots::Group {
                    label: format!("score drop, proxy {p}"),
                    color: plots::color(i),
                    values: pick(m),
                })
                .collect(),
            reference: None,
        };
        let (mut colored, mut grey) = (0, 0);
        let bottom = plots::Panel {
            y_label: "mean share of the map's mass".into(),
            series: masses
                .iter()
                .map(|(baseline, label, m)| {
                    let color = if *baseline {
                        grey += 1;
                        plots::GREYS[(grey - 1) % plots::GREYS.len()]
                    } else {
                        colored += 1;
                        plots::color(colored - 1)
                    };
                    plots::Group { label: label.clone(), color, values: pick(m) }
                })
                .collect(),
            reference: Some(("area share (uniform map)".into(), pick(&area))),
        };
        let names: Vec<String> = parts.iter().map(|&k| PART_NAMES[k].to_string()).collect();
        let suffix = if n_cells > 1 { format!("-cell{}", ci + 1) } else { String::new() };
        let mut title = "Per-part importance: the score drop when a part is removed (top) against \
                         each map's mass on it (bottom), mean over images"
            .to_string();
        if !cell.is_empty() {
            title = format!("{title} ({cell})");
        }
        std::fs::create_dir_all(dir)?;
        let file = dir.join(format!("part_importance{suffix}.png"));
        plots::grouped_bars(&file, &title, &names, &[top, bottom])?;
    }
    Ok(())
}

/// The benchmark's data of a run folder (or several, merged): what its views are made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Benchmark {
    /// `ground_truth_metrics.csv`'s rows.
    pub ground_truth: Vec<GtRow>,
    /// `randomisation_metrics.csv`'s rows.
    pub sanity: Vec<SanityPoint>,
}

/// The column holding `name` in a CSV header, or an error naming the file.
fn column(head: &csv::StringRecord, name: &str, file: &Path) -> Result<usize> {
    head.iter().position(|h| h == name).with_context(|| {
        format!("{} has no `{name}` column; rerun the experiment to rewrite it", file.display())
    })
}

/// An optional number of a data file (empty: `None`).
fn number(text: &str, file: &Path, line: u64) -> Result<Option<f64>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("{} line {line}: `{text}` is not a number", file.display()))
}

impl Benchmark {
    /// Read a run folder's `ground_truth_metrics.csv` and `randomisation_metrics.csv`; a file the
    /// run did not write (no `[benchmark]`, or a run made before the file existed) reads as
    /// empty. Ground-truth rows get every [`value_columns`] value, `None` where the file has no
    /// such column.
    pub fn read(run: &Path) -> Result<Benchmark> {
        let mut out = Benchmark::default();
        let file = run.join("ground_truth_metrics.csv");
        if file.is_file() {
            let mut r = csv::Reader::from_path(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let head = r.headers()?.clone();
            let keys: Vec<usize> = ["cell", "source", "proxy", "stage", "seed", "image_id"]
                .iter()
                .map(|c| column(&head, c, &file))
                .collect::<Result<_>>()?;
            let values: Vec<Option<usize>> =
                value_columns().iter().map(|c| head.iter().position(|h| h == c)).collect();
            for (i, rec) in r.records().enumerate() {
                let rec = rec.with_context(|| format!("reading {}", file.display()))?;
                let line = i as u64 + 2;
                let at = |k: usize| rec.get(keys[k]).unwrap_or_default().to_string();
                let int = |k: usize| {
                    at(k).parse::<u64>().with_context(|| {
                        format!("{} line {line}: `{}` is not a whole number", file.display(), at(k))
                    })
                };
                out.ground_truth.push(GtRow {
                    key: Key { cell: at(0), source: at(1), proxy: at(2), stage: at(3) },
                    seed: int(4)?,
                    image_id: u32::try_from(int(5)?)?,
                    values: values
                        .iter()
                        .map(|c| match c {
                            Some(c) => number(rec.get(*c).unwrap_or_default(), &file, line),
                            None => Ok(None),
                        })
                        .collect::<Result<_>>()?,
                });
            }
        }
        let file = run.join("randomisation_metrics.csv");
        if file.is_file() {
            let mut r = csv::Reader::from_path(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            for (i, p) in r.deserialize::<SanityRecord>().enumerate() {
                let p = p.with_context(|| format!("{} line {}", file.display(), i + 2))?;
                out.sanity.push(p.into());
            }
        }
        Ok(out)
    }

    /// The data of one run folder as it is, or of several, each one's cells prefixed with its
    /// label (as `embcam report` merges [`super::ReportData`]).
    pub fn read_runs(runs: &[std::path::PathBuf], labels: &[String]) -> Result<Benchmark> {
        if let [one] = runs {
            return Benchmark::read(one);
        }
        let mut all = Benchmark::default();
        for (run, label) in runs.iter().zip(labels) {
            all.merge(label, Benchmark::read(run)?);
        }
        Ok(all)
    }

    /// Append another run's data, its cells prefixed with `label` (as
    /// [`super::ReportData::merge`]).
    pub fn merge(&mut self, label: &str, mut other: Benchmark) {
        let relabel = |cell: &mut String| {
            *cell = if cell.is_empty() { label.to_string() } else { format!("{label} {cell}") }
        };
        other.ground_truth.iter_mut().for_each(|r| relabel(&mut r.key.cell));
        other.sanity.iter_mut().for_each(|p| relabel(&mut p.cell));
        self.ground_truth.extend(other.ground_truth);
        self.sanity.extend(other.sanity);
    }

    /// Write every benchmark file into `out` (module docs) from the data; returns the markdown
    /// sections for the run's summary, empty without a benchmark.
    pub fn write(&self, out: &Path, baselines: &[String]) -> Result<String> {
        let mut md = String::new();
        if !self.ground_truth.is_empty() {
            let t = write_ground_truth(out, &self.ground_truth, baselines)?;
            let _ = write!(md, "\nGround truth on SynthCUB's interventions:\n\n{t}");
        }
        if !self.sanity.is_empty() {
            let t = write_randomisation(out, &self.sanity)?;
            let _ = write!(md, "\nModel randomisation (sanity checks):\n\n{t}");
        }
        Ok(md)
    }
}

/// One row of `randomisation_metrics.csv`.
#[derive(serde::Serialize, serde::Deserialize)]
struct SanityRecord {
    cell: String,
    seed: u64,
    step: String,
    layers: usize,
    method: String,
    proxy: String,
    stage: String,
    images: usize,
    spearman: f64,
    ssim: f64,
}

impl From<&SanityPoint> for SanityRecord {
    fn from(p: &SanityPoint) -> Self {
        let r = p.row.clone();
        SanityRecord {
            cell: p.cell.clone(),
            seed: p.seed,
            step: r.step,
            layers: r.layers,
            method: r.method,
            proxy: r.proxy,
            stage: r.stage,
            images: r.images,
            spearman: r.spearman,
            ssim: r.ssim,
        }
    }
}

impl From<SanityRecord> for SanityPoint {
    fn from(r: SanityRecord) -> Self {
        SanityPoint {
            cell: r.cell,
            seed: r.seed,
            row: SanityRow {
                step: r.step,
                layers: r.layers,
                method: r.method,
                proxy: r.proxy,
                stage: r.stage,
                spearman: r.spearman,
                ssim: r.ssim,
                images: r.images,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str, proxy: &str) -> Key {
        Key { cell: String::new(), source: source.into(), proxy: proxy.into(), stage: "s".into() }
    }

    /// Image 7 with its beak (part 2) and tail (14) removed: drops 0.5 and 0.25; the map has
    /// 0.75 of its mass on the beak region (area 0.1), 0.25 on the tail (area 0.2).
    fn row(source: &str, proxy: &str, seed: u64) -> GtRow {
        let pm = |m: f64, a: f64| PartMass { mass_share: m, area_share: a, ratio: m / a };
        let metrics = vec![Some(0.5); PartMetric::ALL.len()];
        GtRow {
            key: key(source, proxy),
            seed,
            image_id: 7,
            values: row_values(
                metrics,
                &[(2, pm(0.75, 0.1)), (14, pm(0.25, 0.2))],
                &[(2, 0.5), (14, 0.25)],
            ),
        }
    }

    #[test]
    fn per_part_values_sit_under_their_part_columns() {
        let cols = value_columns();
        assert_eq!(cols.len(), PartMetric::ALL.len() + 15 * 3);
        let r = row("m", "p", 0);
        let at = |name: &str| r.values[cols.iter().position(|c| c == name).unwrap()];
        assert_eq!(at("part_importance"), Some(0.5));
        assert_eq!(at("mass_share_beak"), Some(0.75));
        assert_eq!(at("area_share_beak"), Some(0.1));
        assert_eq!(at("score_drop_beak"), Some(0.5));
        assert_eq!(at("mass_share_tail"), Some(0.25));
        assert_eq!(at("score_drop_tail"), Some(0.25));
        assert_eq!(at("mass_share_left_wing"), None);
        assert_eq!(PerPart::ScoreDrop.at(15), cols.len() - 1);
    }

    #[test]
    fn the_data_files_read_back_to_the_same_rows_and_views() {
        let dir = tempfile::tempdir().unwrap();
        let sanity = |seed, rho| SanityPoint {
            cell: String::new(),
            seed,
            row: SanityRow {
                step: "cascade:head".into(),
                layers: 1,
                method: "embeddingcam".into(),
                proxy: "p".into(),
                stage: "s".into(),
                spearman: rho,
                ssim: 0.1,
                images: 4,
            },
        };
        let mut old = row("old", "p", 0);
        old.values.truncate(PartMetric::ALL.len()); // a run made before the per-part columns
        let data = Benchmark {
            ground_truth: vec![row("m", "p", 0), row("m", "p", 1), row("uniform-random", "-", 0)],
            sanity: vec![sanity(0, 0.25), sanity(1, 0.125)],
        };
        let baselines = vec!["uniform-random".to_string()];
        let md = data.write(dir.path(), &baselines).unwrap();
        assert!(md.contains("Ground truth") && md.contains("Model randomisation"), "{md}");
        let back = Benchmark::read(dir.path()).unwrap();
        assert_eq!(back, data);
        // The views rebuilt from the data files are the same bytes.
        let files =
            ["ground_truth.md", "ground_truth.csv", "randomisation.md", "randomisation.csv"];
        let before: Vec<Vec<u8>> =
            files.iter().map(|f| std::fs::read(dir.path().join(f)).unwrap()).collect();
        let again = tempfile::tempdir().unwrap();
        assert_eq!(back.write(again.path(), &baselines).unwrap(), md);
        for (f, b) in files.iter().zip(before) {
            assert_eq!(std::fs::read(again.path().join(f)).unwrap(), b, "{f}");
        }
        assert!(again.path().join("plots/part_importance.png").is_file());
        // Old rows read back with the per-part values missing, and draw no part plot.
        let old_dir = tempfile::tempdir().unwrap();
        write_ground_truth(old_dir.path(), &[old.clone()], &baselines).unwrap();
        let read = Benchmark::read(old_dir.path()).unwrap();
        assert_eq!(read.ground_truth[0].values[..PartMetric::ALL.len()], old.values[..]);
        assert!(read.ground_truth[0].values[PartMetric::ALL.len()..].iter().all(Option::is_none));
        assert!(!old_dir.path().join("plots/part_importance.png").exists());
        // A run folder without a benchmark reads as empty.
        assert_eq!(
            Benchmark::read(tempfile::tempdir().unwrap().path()).unwrap(),
            Benchmark::default()
        );
    }

    #[test]
    fn part_means_average_each_part_over_the_rows_that_have_it() {
        let (a, mut b) = (row("m", "p", 0), row("m", "p", 1));
        b.values[PerPart::ScoreDrop.at(2)] = Some(1.5);
        b.values[PerPart::ScoreDrop.at(14)] = None;
        let m = part_means([&a, &b].into_iter(), PerPart::ScoreDrop);
        // beak: (0.5 + 1.5) / 2 = 1; tail: only a's 0.25; wing: none.
        assert_eq!(m[1].get(), Some(1.0));
        assert_eq!(m[13].get(), Some(0.25));
        assert_eq!(m[8].get(), None);
    }
}
