//! A small generated dataset per test, in its own temp dir.

use std::path::{Path, PathBuf};

use embcam_cub::Silent;
use embcam_cub::synth::{SynthConfig, generate};

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(classes: u32, per_class: u32, seed: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            classes,
            images_per_class: per_class,
            min_side: 64,
            max_side: 112,
            seed,
            ..SynthConfig::default()
        };
        generate(&dir.path().join("synth"), &cfg, &Silent).unwrap();
        Fixture { dir }
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("synth/CUB_200_2011")
    }
    pub fn seg(&self) -> PathBuf {
        self.dir.path().join("synth/segmentations")
    }
    /// Rewrite one line (1-based) of an index file.
    pub fn set_line(&self, file: &str, line: usize, text: &str) {
        edit(&self.root().join(file), |lines| lines[line - 1] = text.to_string());
    }
    pub fn remove_line(&self, file: &str, line: usize) {
        edit(&self.root().join(file), |lines| {
            lines.remove(line - 1);
        });
    }
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> =
        std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}
