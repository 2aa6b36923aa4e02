//! Experiment files: TOML → typed serde structs ([`file`]: `deny_unknown_fields`, explicit
//! defaults, every word an enum of [`vocab`]) → grid expansion → validated [`Experiment`]s (one per
//! grid cell and seed) → [`resolve`]d into the library types the stages take.
//!
//! Every key, its default and its meaning are listed in `experiments/README.md`. A typo is an
//! error that names the key and the file. A `[grid]` table maps dotted keys to lists; the run is
//! the cartesian product of the lists, each cell repeated for every seed in `seeds`.

mod dataset;
mod file;
mod resolve;
mod validate;
pub mod vocab;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

pub use file::{DatasetKind, DifficultyPreset, ExperimentFile, SynthSection};
pub use resolve::{Explainer, Resolved, resolve, split};
pub use validate::min_input_side;
use validate::{first_repeat, validate};

/// One cell of the grid with one seed: a fully specified experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Experiment name.
    pub name: String,
    /// The cell's label (`train.margin=0.1,cam.target=post-l2`; empty without a grid).
    pub cell: String,
    /// The seed.
    pub seed: u64,
    /// The configuration with the cell's values applied.
    pub file: ExperimentFile,
}

/// The most runs (grid cells × seeds) one experiment file may ask for.
pub const MAX_RUNS: usize = 10_000;

/// Read, expand and validate an experiment file; its relative paths (`dataset.path`,
/// `dataset.segmentations`, `output.dir`) are made absolute against [`project_root`], so a run
/// reads and writes the same folders from whatever working directory it starts.
pub fn load(path: &Path) -> Result<Vec<Experiment>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading experiment file {}", path.display()))?;
    let mut experiments = parse(&text, path)?;
    let root = project_root(path)?;
    for e in &mut experiments {
        let d = &mut e.file.dataset;
        for p in [Some(&mut d.path), d.segmentations.as_mut(), Some(&mut e.file.output.dir)]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = root.join(&*p);
            }
        }
    }
    Ok(experiments)
}

/// The folder an experiment file's relative paths resolve against: the nearest folder at or
/// above the file's own that holds a `Cargo.toml` (the project root, so the shipped
/// `experiments/*.toml` say `datasets/synthcub` for the repository's `datasets/`), or, when
/// there is none, the file's own folder. Never the working directory.
pub fn project_root(path: &Path) -> Result<std::path::PathBuf> {
    let file = path
        .canonicalize()
        .with_context(|| format!("finding the folder of experiment file {}", path.display()))?;
    let folder = file.parent().context("an experiment file lies in a folder")?;
    let root = folder.ancestors().find(|d| d.join("Cargo.toml").is_file()).unwrap_or(folder);
    Ok(root.to_path_buf())
}

/// Parse experiment-file text (`path` names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Experiment>> {
    let value: toml::Table =
        toml::from_str(text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let base: ExperimentFile = toml::Value::Table(value.clone())
        .try_into()
        .with_context(|| format!("in experiment file {}", path.display()))?;
    let name = match &base.name {
        Some(n) => n.clone(),
        None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
        "{}: experiment name `{name}` must be non-empty ASCII letters, digits, `-` or `_`",
        path.display()
    );
    ensure!(!base.seeds.is_empty(), "{}: `seeds` must list at least one seed", path.display());
    if let Some(key) = base.grid.keys().find(|k| *k == "seeds" || *k == "name") {
        bail!(
            "{}: [grid] cannot vary `{key}`: every cell runs the top-level `seeds` under the \
             file's `name`; set them at the top of the file",
            path.display()
        );
    }
    if let Some((key, _)) = base.grid.iter().find(|(_, values)| values.is_empty()) {
        bail!(
            "{}: [grid] key `{key}` has an empty list, which makes no runs; give it at least one \
             value or remove it",
            path.display()
        );
    }
    // Count before expanding: a grid of a few long lists multiplies past what memory holds.
    let runs = base.grid.values().fold(base.seeds.len(), |n, v| n.saturating_mul(v.len()));
    ensure!(
        runs <= MAX_RUNS,
        "{}: [grid] × `seeds` asks for {runs} runs, more than the {MAX_RUNS} allowed; \
         split the experiment into several files",
        path.display()
    );
    if let Some(seed) = first_repeat(&base.seeds) {
        bail!(
            "{}: `seeds` lists {seed} twice; every run of that seed would be counted twice. \
             List each seed once",
            path.display()
        );
    }
    for (key, values) in &base.grid {
        if let Some(v) = first_repeat(values.iter().map(toml::Value::to_string)) {
            bail!(
                "{}: [grid] key `{key}` lists {v} twice; its runs would be counted twice. \
                 List each value once",
                path.display()
            );
        }
    }
    let mut out = Vec::new();
    // The configuration of each cell so far, to catch two spellings of one value (`1`, `1.0`).
    let mut made: HashMap<String, String> = HashMap::new();
    for cell in cells(&base.grid) {
        let mut table = value.clone();
        table.remove("grid");
        let mut label = Vec::new();
        for (key, v) in &cell {
            set_dotted(&mut table, key)
                .with_context(|| format!("{}: [grid] key `{key}`", path.display()))?
                .clone_from(v);
            label.push(format!("{key}={}", show(v)));
        }
        let mut file: ExperimentFile = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("{}: [grid] cell {}", path.display(), label.join(",")))?;
        file.name = Some(name.clone());
        validate(&file).with_context(|| format!("in experiment file {}", path.display()))?;
        if let Some(other) = made.insert(format!("{file:?}"), label.join(",")) {
            bail!(
                "{}: [grid] cells {other} and {} are the same experiment (the values read the \
                 same); its runs would be counted twice. List each value once",
                path.display(),
                label.join(",")
            );
        }
        for &seed in &base.seeds {
            out.push(Experiment {
                name: name.clone(),
                cell: label.join(","),
                seed,
                file: file.clone(),
            });
        }
    }
    Ok(out)
}

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The cartesian product of the grid's lists, in key order.
fn cells(grid: &BTreeMap<String, Vec<toml::Value>>) -> Vec<Vec<(String, toml::Value)>> {
    let mut cells = vec![Vec::new()];
    for (key, values) in grid {
        cells = cells
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    cells
}

/// The slot for a dotted key (`train.margin`), creating missing tables; the key's last part
/// must name a field (checked when the table is deserialised).
fn set_dotted<'a>(table: &'a mut toml::Table, key: &str) -> Result<&'a mut toml::Value> {
    let parts: Vec<&str> = key.split('.').collect();
    ensure!(parts.iter().all(|p| !p.is_empty()), "malformed dotted key");
    let (last, path) = parts.split_last().context("empty key")?;
    let mut t = table;
    for p in path {
        let entry =
            t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => bail!("`{p}` is not a table"),
        };
    }
    Ok(t.entry(last.to_string()).or_insert(toml::Value::Boolean(false)))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
