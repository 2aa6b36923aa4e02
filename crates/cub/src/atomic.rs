//! Atomic file writes, shared by every crate of the harness: a file is written under a temporary
//! sibling name and renamed into place, so a reader (or a rerun after a crash or a full disk)
//! never sees a half-written file under the real name; a failed write removes its temporary file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling `path` is written through: `.tmp-<pid>-<name>` in the same folder (the
/// same file system, so the rename is atomic), keeping the name's extension, which some encoders
/// read.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Fill `path` through `fill`, which writes the temporary sibling it is given, then rename it into
/// place. On any error the temporary file is removed and `path` is untouched.
pub fn write_with<E: From<std::io::Error>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = temp_path(path);
    let written = fill(&tmp).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Write `bytes` to `path` atomically (flushed to disk before the rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_neither_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"first").unwrap_or_else(|e| panic!("{e}"));
        let failed: std::io::Result<()> = write_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap_or_default(), b"first");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.map(|e| e.file_name()).unwrap_or_default())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }
}
