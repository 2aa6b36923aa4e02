//! Files of a run: atomic writes, content-keyed stage folders, and run folders that are never
//! overwritten.
//!
//! A stage's folder is `<exp>/stages/<stage>-<key>/` where `key` hashes (SHA-256) the JSON of the
//! configuration parts and upstream keys that feed it: an unchanged stage has the same folder and
//! is reused. A stage is complete when its `DONE` file exists; `DONE` is written last, atomically,
//! so an interrupted stage is simply recomputed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::lock::{self, Lock};

/// Write `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| Ok(std::fs::write(tmp, bytes)?))
}

/// Write a file through a closure that fills a temporary path in the same folder, then rename it
/// into place (`embcam_cub::atomic`); the folder is created when missing. A failed write (a full
/// disk, say) leaves neither a partial file under the real name nor the temporary one.
pub fn write_with(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().context("a file path has a parent folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    embcam_cub::atomic::write_with(path, fill)
        .with_context(|| format!("writing {}", path.display()))
}

/// Hex SHA-256 of a value's JSON, shortened to 16 characters.
pub fn key_of(value: &impl Serialize) -> Result<String> {
    let json = serde_json::to_vec(value).context("serialising a stage key")?;
    let digest = Sha256::digest(&json);
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// The file listing a finished stage's files (`Stage::write_manifest`).
const MANIFEST: &str = "MANIFEST.json";

/// A cheap content hash: SHA-256 of the file's first and last 64 KiB (the whole file when it is
/// smaller), hex, 16 characters. With the size it catches a file cut, replaced or rewritten at
/// either end; a change confined to the middle of a large file (a model's weights) is not seen —
/// the price of reusing a stage without reading every byte of its checkpoints.
pub fn quick_hash(path: &Path) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    const SPAN: u64 = 64 * 1024;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = f.metadata().with_context(|| format!("reading {}", path.display()))?.len();
    let mut hasher = Sha256::new();
    let mut buf = Vec::new();
    let read = |f: &mut std::fs::File, from: u64, n: u64, buf: &mut Vec<u8>| {
        buf.clear();
        f.seek(SeekFrom::Start(from))?;
        f.take(n).read_to_end(buf)
    };
    read(&mut f, 0, SPAN, &mut buf).with_context(|| format!("reading {}", path.display()))?;
    hasher.update(&buf);
    if len > SPAN {
        let from = (len - SPAN).max(SPAN);
        read(&mut f, from, SPAN, &mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        hasher.update(&buf);
    }
    Ok(hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// A stage's folder.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The folder.
    pub dir: PathBuf,
    /// Its key.
    pub key: String,
}

impl Stage {
    /// The folder of stage `name` with `inputs` under `exp_dir`.
    pub fn new(exp_dir: &Path, name: &str, inputs: &impl Serialize) -> Result<Stage> {
        let key = key_of(inputs)?;
        Ok(Stage { dir: exp_dir.join("stages").join(format!("{name}-{key}")), key })
    }

    /// Whether the stage finished before.
    pub fn is_done(&self) -> bool {
        self.dir.join("DONE").is_file()
    }

    /// Mark the stage finished (after all its files are written).
    pub fn finish(&self, seconds: f64) -> Result<()> {
        write_atomic(&self.dir.join("DONE"), format!("{{\"seconds\": {seconds:.3}}}\n").as_bytes())
    }

    /// Record every file of the finished stage in `MANIFEST.json` (written before `DONE`): its
    /// path, size and [`quick_hash`].
    pub fn write_manifest(&self) -> Result<()> {
        let files = self.files()?;
        let mut entries = Vec::new();
        for rel in files {
            let path = self.dir.join(&rel);
            let size = std::fs::metadata(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .len();
            entries
                .push(serde_json::json!({"file": rel, "size": size, "hash": quick_hash(&path)?}));
        }
        write_atomic(&self.file(MANIFEST), &serde_json::to_vec_pretty(&entries)?)
    }

    /// Check a finished stage against its `MANIFEST.json`: `None` when every file is there with
    /// its size and hash (or the stage predates manifests), else what is wrong with the first
    /// damaged file.
    pub fn damage(&self) -> Option<String> {
        let bytes = std::fs::read(self.file(MANIFEST)).ok()?;
        let Ok(entries) = serde_json::from_slice::<Vec<serde_json::Value>>(&bytes) else {
            return Some(format!("{} is unreadable", self.file(MANIFEST).display()));
        };
        for e in entries {
            let rel = e["file"].as_str().unwrap_or_default();
            let path = self.dir.join(rel);
            let Ok(meta) = std::fs::metadata(&path) else {
                return Some(format!("{} is missing", path.display()));
            };
            if Some(meta.len()) != e["size"].as_u64() {
                return Some(format!(
                    "{} has {} bytes, {} when the stage finished",
                    path.display(),
                    meta.len(),
                    e["size"]
                ));
            }
            if quick_hash(&path).ok().as_deref() != e["hash"].as_str() {
                return Some(format!("{} changed since the stage finished", path.display()));
            }
        }
        None
    }

    /// The stage's files (relative paths, sorted), without its markers.
    fn files(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut todo = vec![self.dir.clone()];
        while let Some(dir) = todo.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    todo.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.dir) {
                    let rel = rel.to_string_lossy().into_owned();
                    if rel != "DONE" && rel != MANIFEST {
                        out.push(rel);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Seconds the stage took when it ran (0 when unknown).
    pub fn seconds(&self) -> f64 {
        std::fs::read_to_string(self.dir.join("DONE"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["seconds"].as_f64())
            .unwrap_or(0.0)
    }

    /// A file in the stage's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Forget a partial (or, with `--force`, a finished) result.
    pub fn reset(&self) -> Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .with_context(|| format!("removing {}", self.dir.display()))?;
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))
    }
}

/// A fresh run folder `<exp_dir>/runs/<run-id>/`: `run-001`, `run-002`, …, never an existing one,
/// and held (its `LOCK`) until the returned [`Lock`] is dropped. The id is claimed by creating
/// the folder (`create_dir`, which fails for all but one of several processes; the others take
/// the next number), so concurrent runs never share one. An unfinished run of the same
/// configuration (no `DONE`) whose process died is continued instead; one still running is not.
pub fn run_dir(exp_dir: &Path, config_key: &str) -> Result<(PathBuf, Lock)> {
    let runs = exp_dir.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    let mut last = 0;
    for entry in std::fs::read_dir(&runs).with_context(|| format!("listing {}", runs.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(n) = name.strip_prefix("run-").and_then(|n| n.parse::<u32>().ok()) {
            last = last.max(n);
            let same = std::fs::read_to_string(path.join("CONFIG_KEY"))
                .is_ok_and(|k| k.trim() == config_key);
            if same
                && !path.join("DONE").exists()
                && let Ok(lock) = lock::try_acquire(&path.join("LOCK"))?
                // Finished between the look and the lock: not ours to write.
                && !path.join("DONE").exists()
            {
                return Ok((path, lock));
            }
        }
    }
    for n in last + 1.. {
        let dir = runs.join(format!("run-{n:03}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let lock = lock::try_acquire(&dir.join("LOCK"))?
                    .map_err(|h| anyhow::anyhow!("{} was just created, yet {h}", dir.display()))?;
                write_atomic(&dir.join("CONFIG_KEY"), format!("{config_key}\n").as_bytes())?;
                return Ok((dir, lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!("run numbers are unbounded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_never_reused_once_done() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, held) = run_dir(tmp.path(), "k1").expect("run");
        assert!(a.ends_with("runs/run-001"));
        // Unfinished, same config, but held by a running process: a new run.
        let (b, held_b) = run_dir(tmp.path(), "k1").expect("run");
        assert!(b.ends_with("runs/run-002"));
        write_atomic(&b.join("DONE"), b"").expect("write");
        drop((held, held_b));
        assert!(!a.join("LOCK").exists());
        // Unfinished, same config, nobody holds it (its process died): continued.
        let (again, held) = run_dir(tmp.path(), "k1").expect("run");
        assert_eq!(again, a);
        // Other config: a new run.
        let (c, _held_c) = run_dir(tmp.path(), "k2").expect("run");
        assert!(c.ends_with("runs/run-003"));
        write_atomic(&a.join("DONE"), b"").expect("write");
        drop(held);
        let (d, _held_d) = run_dir(tmp.path(), "k1").expect("run");
        assert!(d.ends_with("runs/run-004"), "{}", d.display());
    }

    #[test]
    fn stage_keys_follow_their_inputs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = Stage::new(tmp.path(), "train", &("small-cnn", 0.2)).expect("stage");
        let b = Stage::new(tmp.path(), "train", &("small-cnn", 0.2)).expect("stage");
        let c = Stage::new(tmp.path(), "train", &("small-cnn", 0.3)).expect("stage");
        assert_eq!(a.dir, b.dir);
        assert_ne!(a.dir, c.dir);
        a.reset().expect("reset");
        assert!(!a.is_done());
        a.finish(1.5).expect("finish");
        assert!(b.is_done());
        assert_eq!(b.seconds(), 1.5);
    }
}
