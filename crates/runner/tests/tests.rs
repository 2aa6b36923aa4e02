//! The `embcam` binary, end to end.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

mod benchmark;
mod cluster;
mod faults;
mod run;

fn embcam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embcam")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn synth(out: &Path, extra: &[&str]) -> Output {
    let mut args =
        vec!["synth", out.to_str().unwrap(), "--classes", "3", "--images-per-class", "4"];
    args.extend_from_slice(&["--min-side", "64", "--max-side", "80"]);
    args.extend_from_slice(extra);
    embcam(&args)
}

#[test]
fn synth_generates_validates_and_reuses() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = synth(&out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("wrote 12 images") && text(&o).contains("ok: no problems found"));
    // Same settings: reused, not regenerated.
    let o = synth(&out, &[]);
    assert!(o.status.success() && text(&o).contains("already holds this SynthCUB"), "{}", text(&o));
    // Different settings: refused without --force, never overwritten silently.
    let o = synth(&out, &["--seed", "9"]);
    assert!(!o.status.success() && text(&o).contains("--force"), "{}", text(&o));
    let o = synth(&out, &["--seed", "9", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    // validate accepts the folder holding CUB_200_2011 and finds segmentations beside it.
    let o = embcam(&["validate", out.to_str().unwrap()]);
    assert!(
        o.status.success() && text(&o).contains("masks                 12 of 12"),
        "{}",
        text(&o)
    );
}

#[test]
fn validate_reports_problems_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    assert!(synth(&out, &[]).status.success());
    let boxes = out.join("CUB_200_2011/bounding_boxes.txt");
    let t = std::fs::read_to_string(&boxes).unwrap().replacen("\n2 ", "\n2 oops ", 1);
    std::fs::write(&boxes, t).unwrap();
    let o = embcam(&["validate", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("bounding_boxes.txt:2:") && t.contains("Error:"), "{t}");
    let o = embcam(&["validate", tmp.path().join("nowhere").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("datasets/README.md"), "{}", text(&o));
}
