//! The jobs of an experiment file and their records, so that a run can be split over processes
//! and machines (`embcam run FILE --shard I/N`) and assembled afterwards (`--collect`).
//!
//! A *job* is one grid cell with one seed, numbered from 1 in the file's order (cells in the
//! order of the grid's keys, seeds inner), the order `embcam run` has always used. Shard `I` of
//! `N` holds the jobs `j` with `(j − 1) mod N = I − 1`: round robin, so with cells × seeds the
//! jobs of one seed (which often share a training stage) land in the same shard, and every shard
//! gets a share of each cell.
//!
//! When a job has been through its stages it writes its *record*,
//! `<output.dir>/<name>/jobs/<key>/job-NNNN.json`: its share of the run folder (per-image rows,
//! split-level rows, curves, training history, the benchmark's rows, its manifest entry, its
//! warnings, its gallery files). `key` hashes the experiment file's text, the embcam version and a
//! `--device` override, so records of an edited file are never mixed with the new ones. A run
//! folder is always assembled from the records read back from disk — by `embcam run FILE` after
//! running every job, and by `embcam run FILE --collect` after shards — so the two give the same
//! bytes. Records are written atomically (a temporary file named with this host and pid, then a
//! rename): two processes running one job each leave a whole record.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::{self, Experiment};
use crate::report::ReportData;
use crate::report::benchmark::{GtRow, SanityPoint};
use crate::store;

/// Share `index` (from 1) of `count` of an experiment's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, 1 ≤ index ≤ count.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl Shard {
    /// Whether job `job` (from 1) belongs to this shard.
    pub fn holds(self, job: usize) -> bool {
        (job - 1) % self.count + 1 == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let parsed = s.split_once('/').and_then(|(i, n)| {
            Some(Shard { index: i.trim().parse().ok()?, count: n.trim().parse().ok()? })
        });
        match parsed {
            Some(sh) if sh.index >= 1 && sh.index <= sh.count => Ok(sh),
            _ => Err(format!(
                "`{s}` is not a shard: write I/N with 1 ≤ I ≤ N, e.g. 2/8 for the second of eight"
            )),
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// An experiment file ready to run: its jobs, where its results go, and its key.
pub struct Plan {
    /// The file as named on the command line.
    pub path: PathBuf,
    /// Its text, copied into the run folder.
    pub text: String,
    /// One experiment per job, job `j` at `j − 1`.
    pub experiments: Vec<Experiment>,
    /// `<output.dir>/<name>/`: `stages/`, `jobs/`, `runs/`.
    pub exp_dir: PathBuf,
    /// Hash of the file's text, the embcam version and the device override.
    pub key: String,
}

impl Plan {
    /// Read and expand the experiment file; `device` replaces every cell's `model.device`.
    pub fn load(path: &Path, device: Option<&str>) -> Result<Plan> {
        let mut experiments = config::load(path)?;
        if let Some(d) = device {
            experiments.iter_mut().for_each(|e| e.file.model.device = d.to_string());
        }
        let first = experiments.first().context("an experiment file makes at least one job")?;
        let exp_dir = first.file.output.dir.join(&first.name);
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let key = store::key_of(&(text.as_str(), env!("CARGO_PKG_VERSION"), device))?;
        Ok(Plan { path: path.to_path_buf(), text, experiments, exp_dir, key })
    }

    /// The jobs (number from 1, experiment) of `shard`, or all of them.
    pub fn jobs(&self, shard: Option<Shard>) -> impl Iterator<Item = (usize, &Experiment)> {
        let holds = move |j: &usize| shard.is_none_or(|s| s.holds(*j));
        (1..).zip(&self.experiments).filter(move |(j, _)| holds(j))
    }

    /// The folder holding this plan's records.
    pub fn records(&self) -> PathBuf {
        self.exp_dir.join("jobs").join(&self.key)
    }

    /// Job `job`'s record file.
    pub fn record_path(&self, job: usize) -> PathBuf {
        self.records().join(format!("job-{job:04}.json"))
    }

    /// The job list `--list` prints: a header, then one tab-separated line per job of `shard`
    /// (or every job): number, seed, `done` (its record is written) or `pending`, cell.
    pub fn list(&self, shard: Option<Shard>) -> String {
        let mut out = String::from("job\tseed\tstate\tcell\n");
        for (j, e) in self.jobs(shard) {
            let state = if self.record_path(j).is_file() { "done" } else { "pending" };
            out.push_str(&format!("{j}\t{}\t{state}\t{}\n", e.seed, e.cell));
        }
        out
    }

    /// Write job `record.job`'s record.
    pub fn write_record(&self, record: &Record) -> Result<()> {
        let path = self.record_path(record.job);
        let dir = path.parent().context("a record lies in a folder")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // The host in the name too: pids of two machines writing one shared folder may collide.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".tmp-{}-{}-{name}", crate::lock::host(), std::process::id()));
        let bytes = serde_json::to_vec(record)?;
        let written = std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.with_context(|| format!("writing the job record {}", path.display()))
    }

    /// Every job's record, in job order; refused, naming the jobs without one, while any is
    /// missing.
    pub fn read_records(&self) -> Result<Vec<Record>> {
        let missing: Vec<(usize, &Experiment)> =
            self.jobs(None).filter(|(j, _)| !self.record_path(*j).is_file()).collect();
        if !missing.is_empty() {
            const SHOWN: usize = 20;
            let mut names: Vec<String> =
                missing.iter().take(SHOWN).map(|(j, e)| describe(*j, e)).collect();
            if missing.len() > SHOWN {
                names.push(format!("and {} more", missing.len() - SHOWN));
            }
            bail!(
                "cannot collect {}: {} of its {} jobs {} no record yet in {}: {}. Their shards \
                 are unfinished or failed; `embcam run {} --list` shows every job's state. Run \
                 them (`--shard I/N` again, or the whole file), then collect{}",
                self.path.display(),
                missing.len(),
                self.experiments.len(),
                if missing.len() == 1 { "has" } else { "have" },
                self.records().display(),
                names.join(", "),
                self.path.display(),
                self.other_keys()
            );
        }
        self.jobs(None)
            .map(|(j, e)| {
                let path = self.record_path(j);
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let r: Record = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "the job record {} is damaged; delete it and run {} again",
                        path.display(),
                        describe(j, e)
                    )
                })?;
                if (r.job, r.cell.as_str(), r.seed) != (j, e.cell.as_str(), e.seed) {
                    bail!(
                        "{} holds job {} (cell `{}` seed {}), not {}; it was not written for this \
                         experiment file: delete it and run the job again",
                        path.display(),
                        r.job,
                        r.cell,
                        r.seed,
                        describe(j, e)
                    );
                }
                Ok(r)
            })
            .collect()
    }

    /// A hint when the `jobs/` folder holds records under other keys.
    fn other_keys(&self) -> String {
        let others = std::fs::read_dir(self.exp_dir.join("jobs"))
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name() != *self.key).count())
            .unwrap_or(0);
        if others == 0 {
            return String::new();
        }
        format!(
            ". ({} holds records of {others} other version(s) of this experiment: the file, the \
             --device or the embcam build changed since they were written, and they are not mixed \
             with these; collect with the same file, --device and build as the shards)",
            self.exp_dir.join("jobs").display()
        )
    }
}

/// `job 3 (cell `…` seed 1)`.
pub fn describe(job: usize, e: &Experiment) -> String {
    if e.cell.is_empty() {
        format!("job {job} (seed {})", e.seed)
    } else {
        format!("job {job} (cell `{}` seed {})", e.cell, e.seed)
    }
}

/// One job's share of a run folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// Job number, from 1.
    pub job: usize,
    /// Its grid cell.
    pub cell: String,
    /// Its seed.
    pub seed: u64,
    /// Rows, split rows, curves, training history (no baselines: the file names them).
    pub data: ReportData,
    /// Ground-truth rows (`[benchmark] ground_truth`).
    pub ground_truth: Vec<GtRow>,
    /// Randomisation rows (`[benchmark] sanity_checks`).
    pub sanity: Vec<SanityPoint>,
    /// The job's entry in `manifest.json`'s `cells`.
    pub manifest: serde_json::Value,
    /// Warnings, in the order they were raised.
    pub warnings: Vec<String>,
    /// The gallery images of its explain stage.
    pub galleries: Vec<PathBuf>,
    /// Seconds the job took in the process that wrote the record.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition_round_robin() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        assert_eq!(s.to_string(), "2/3");
        let held: Vec<usize> = (1..=7).filter(|&j| s.holds(j)).collect();
        assert_eq!(held, [2, 5]);
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "", "1/2/3"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
    }
}
