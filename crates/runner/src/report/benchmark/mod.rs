//! The benchmark's views (`[benchmark]`): the part-level ground-truth table and the model
//! randomisation table, each as markdown and CSV, plus the per-image ground-truth rows and the
//! randomisation curve (`ground_truth.rs`, `parts.rs` its per-part plot, `randomisation.rs`).
//!
//! | file | what |
//! |---|---|
//! | `ground_truth_metrics.csv` | `cell,source,proxy,stage,seed,image_id,` then [`value_columns`]: [`PartMetric::ALL`](embcam_eval::PartMetric::ALL), then [`PerPart::ALL`](ground_truth::PerPart::ALL) per CUB part |
//! | `ground_truth.md` / `.csv` | per map source: mean over images, ± as `summary.md` |
//! | `plots/part_importance.png` | per part: mean score drop when removed, per proxy; mean share of each map source's mass, beside the area share |
//! | `randomisation_metrics.csv` | `cell,seed,step,layers,method,proxy,stage,images,spearman,ssim`: one row per seed |
//! | `randomisation.md` / `.csv` | per step × method × proxy × stage: mean ρ and SSIM, passes |
//! | `plots/randomisation.png` | mean ρ against the layers randomised, cascading steps |
//!
//! The two `*_metrics.csv` files are the data: [`Benchmark::read`] reads them back, so `embcam report`
//! rebuilds every other file here from a run folder.

mod ground_truth;
mod parts;
mod randomisation;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

pub use ground_truth::{GtRow, row_values, value_columns, write_ground_truth};
use randomisation::SanityRecord;
pub use randomisation::{SanityPoint, write_randomisation};

use crate::table::Key;

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

#[cfg(test)]
mod tests {
    use embcam_eval::{PartMass, PartMetric};

    use super::*;
    use crate::pipeline::SanityRow;

    pub(super) fn key(source: &str, proxy: &str) -> Key {
        Key { cell: String::new(), source: source.into(), proxy: proxy.into(), stage: "s".into() }
    }

    /// Image 7 with its beak (part 2) and tail (14) removed: drops 0.5 and 0.25; the map has
    /// 0.75 of its mass on the beak region (area 0.1), 0.25 on the tail (area 0.2).
    pub(super) fn row(source: &str, proxy: &str, seed: u64) -> GtRow {
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
}
