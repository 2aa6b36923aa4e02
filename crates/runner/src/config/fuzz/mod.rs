//! Fuzzing the experiment-file parser ([`load`]) with mutations of the shipped experiment files
//! (`experiments/*.toml`, `experiments/ablations/*.toml`).
//!
//! Structural mutations of the parsed table (a key removed, renamed, set to a value of any type,
//! an unknown or known key inserted, a `[grid]` of existing or invented dotted keys with lists of
//! any values, sometimes empty) are written back as TOML, then text mutations may follow (lines
//! deleted, duplicated or swapped, truncation, stray bytes, CRLF, a byte-order mark, deep
//! nesting, random bytes). Each case must return within [`CASE_TIMEOUT_MS`]; an error must name
//! the file and, for a structural mutation alone, one of the keys it touched (or a TOML line).
//!
//! Budget: `EMBCAM_FUZZ_CASES` cases (default [`DEFAULT_CASES`], about 4 s in a debug build on
//! a 2-core machine); `--nocapture` shows the count.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use toml::Table;

use super::{MAX_RUNS, load};

mod mutations;

use mutations::{Op, TextEdit, op, text_edit};

/// Cases when `EMBCAM_FUZZ_CASES` is unset.
const DEFAULT_CASES: u32 = 1024;
/// A case that runs longer than this fails the test (proptest kills the child process running
/// the cases).
const CASE_TIMEOUT_MS: u32 = 10_000;

fn cases() -> u32 {
    std::env::var("EMBCAM_FUZZ_CASES")
        .map(|s| s.parse().expect("EMBCAM_FUZZ_CASES must be a whole number"))
        .unwrap_or(DEFAULT_CASES)
}

/// The shipped experiment files: (file name, text, parsed table).
fn seeds() -> &'static [(String, String, Table)] {
    static SEEDS: OnceLock<Vec<(String, String, Table)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
        let mut files: Vec<PathBuf> = [dir.clone(), dir.join("ablations")]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 2, "no experiment files under {}", dir.display());
        files
            .into_iter()
            .map(|p| {
                load(&p)
                    .unwrap_or_else(|e| panic!("shipped file {} must load: {e:#}", p.display()));
                let text = std::fs::read_to_string(&p).unwrap();
                let table = toml::from_str(&text).unwrap();
                (p.file_name().unwrap().to_string_lossy().into_owned(), text, table)
            })
            .collect()
    })
}

/// Whether `msg` names `key`: in backticks (alone or ending a dotted path, as in toml's
/// ``in `train.p` ``), or on its own (not inside a longer identifier).
fn mentions(msg: &str, key: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    msg.contains(&format!("`{key}`"))
        || msg.contains(&format!(".{key}`"))
        || !key.is_empty()
            && msg.match_indices(key).any(|(at, _)| {
                !msg[..at].chars().next_back().is_some_and(ident)
                    && !msg[at + key.len()..].chars().next().is_some_and(ident)
            })
}

static TRIED: AtomicU32 = AtomicU32::new(0);
static REJECTED: AtomicU32 = AtomicU32::new(0);
static START: OnceLock<Instant> = OnceLock::new();

/// Count a case; print the count after the last (the cases run in a child process that exits
/// without returning).
fn record(rejected: bool) {
    let start = *START.get_or_init(Instant::now);
    let rejected = REJECTED.fetch_add(rejected as u32, Ordering::Relaxed) + rejected as u32;
    let tried = TRIED.fetch_add(1, Ordering::Relaxed) + 1;
    if tried == cases() {
        println!(
            "fuzz experiment files (config::load): {tried} inputs tried ({rejected} rejected \
             with an error) in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
}

fn check(seed: Index, ops: &[Op], edits: &[TextEdit]) -> Result<(), TestCaseError> {
    let (name, text, table) = &seeds()[seed.index(seeds().len())];
    let mut table = table.clone();
    let mut touched = Vec::new();
    for op in ops {
        op.apply(&mut table, &mut touched);
    }
    let mut bytes = if ops.is_empty() {
        text.clone().into_bytes()
    } else {
        toml::to_string(&table).unwrap().into_bytes()
    };
    for e in edits {
        e.apply(&mut bytes);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    let loaded = load(&path);
    match &loaded {
        Ok(runs) => {
            prop_assert!(!runs.is_empty(), "a file that runs nothing must be an error");
            prop_assert!(runs.len() <= MAX_RUNS);
        }
        Err(e) => {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains(&path.display().to_string()), "file not named: {msg}");
            if edits.is_empty() {
                prop_assert!(
                    msg.contains("TOML parse error at line")
                        || touched.iter().any(|k| mentions(&msg, k)),
                    "none of the keys changed ({touched:?}) is named: {msg}"
                );
            }
        }
    }
    record(loaded.is_err());
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        timeout: CASE_TIMEOUT_MS,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn experiment_files_never_panic_and_name_file_and_key(
        seed in any::<Index>(),
        ops in prop::collection::vec(op(), 0..=3),
        edits in prop::collection::vec(text_edit(), 0..=2),
    ) {
        check(seed, &ops, &edits)?;
    }
}

// What the fuzzing found, kept as plain tests with the minimal inputs.

const MINIMAL: &str = "[dataset]\nkind = \"synth\"\npath = \"datasets/synthcub\"\n";

/// Found by the fuzz test (shrunk to a `[grid]` whose one key has an empty list): the file
/// loaded as zero runs, so `embcam run` would do nothing and say nothing.
#[test]
fn an_empty_grid_list_is_an_error() {
    let text = format!("{MINIMAL}[grid]\n\"train.margin\" = []\n\"cam.target\" = [\"pre-l2\"]\n");
    let err = format!("{:#}", super::parse(&text, Path::new("x/empty.toml")).unwrap_err());
    assert!(err.contains("x/empty.toml") && err.contains("`train.margin`"), "{err}");
}

/// Found while writing the grid strategy: the cells were expanded before anything was checked,
/// so eight keys of ten values (10⁸ cells) would exhaust memory. The count is checked first.
#[test]
fn a_grid_past_max_runs_is_refused_before_expanding() {
    let list = format!("[{}]", (0..10).map(|v| v.to_string()).collect::<Vec<_>>().join(", "));
    let keys = ["epochs", "p", "k", "lr", "margin", "momentum", "weight_decay", "mining"];
    let grid: String = keys.iter().map(|k| format!("\"train.{k}\" = {list}\n")).collect();
    let start = Instant::now();
    let err = super::parse(&format!("{MINIMAL}[grid]\n{grid}"), Path::new("big.toml"));
    let err = format!("{:#}", err.unwrap_err());
    assert!(err.contains("big.toml") && err.contains("100000000 runs"), "{err}");
    assert!(start.elapsed().as_secs() < 1, "refused only after {:?}", start.elapsed());
    // The limit itself is allowed: 10 seeds × 10 × 10 × 10.
    let ones = format!("[{}]", (1..=10).map(|v| v.to_string()).collect::<Vec<_>>().join(", "));
    let grid: String = ["train.epochs", "cam.knn", "cam.gallery"]
        .iter()
        .map(|k| format!("\"{k}\" = {ones}\n"))
        .collect();
    let text = format!("seeds = {list}\n{MINIMAL}[grid]\n{grid}");
    assert_eq!(super::parse(&text, Path::new("max.toml")).map(|r| r.len()).ok(), Some(MAX_RUNS));
}
