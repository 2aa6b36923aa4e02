//! The parser's unit tests: defaults, ranges, repeats, typos, grids.

use std::path::Path;

use super::*;

const MINIMAL: &str = "[dataset]\nkind = \"synth\"\npath = \"datasets/synthcub\"\n";

#[test]
fn defaults_fill_a_minimal_file() {
    let e = parse(MINIMAL, Path::new("experiments/mini.toml")).expect("valid");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].name, "mini");
    assert_eq!(e[0].file.train.margin, 0.2);
    let proxies = &e[0].file.cam.proxies;
    assert_eq!(proxies, &[vocab::ProxyName::NormalizedMean, vocab::ProxyName::SinglePoint]);
}

#[test]
fn a_grid_cannot_vary_seeds_or_name() {
    for key in ["seeds", "name"] {
        let text = format!("{MINIMAL}[grid]\n\"{key}\" = [1, 2]\n");
        let err = format!("{:#}", parse(&text, Path::new("s.toml")).unwrap_err());
        assert!(err.contains(&format!("`{key}`")) && err.contains("s.toml"), "{err}");
    }
}

#[test]
fn numbers_out_of_range_are_refused_with_their_key() {
    for (section, line, key) in [
        ("train", "lr = inf", "train.lr"),
        ("train", "lr = nan", "train.lr"),
        ("train", "margin = -0.1", "train.margin"),
        ("train", "weight_decay = nan", "train.weight_decay"),
        ("train", "momentum = 1.0", "train.momentum"),
        ("eval", "pointing_tolerance = -1.0", "eval.pointing_tolerance"),
        // Each of these aborted on allocation, panicked, or meant something else silently.
        ("model", "embedding_dim = 1000000000", "model.embedding_dim"),
        ("model", "embedding_dim = 0", "model.embedding_dim"),
        ("train", "k = 1000000000", "train.k"),
        ("train", "p = 1025", "train.p"),
        ("train", "p = 1", "train.p"),
        ("train", "p = 64\nk = 128", "train.p × train.k"),
        ("train", "epochs = 0", "train.epochs"),
        ("train", "epochs = 1000000000", "train.epochs"),
        ("eval", "faithfulness_steps = 0", "eval.faithfulness_steps"),
        ("eval", "faithfulness_steps = 1000000000", "eval.faithfulness_steps"),
        ("eval", "max_images = 0", "eval.max_images"),
        ("cam", "knn = 0", "cam.knn"),
        ("cam", "knn = 1000000000", "cam.knn"),
        ("cam", "batch_size = 0", "cam.batch_size"),
        ("cam", "batch_size = 100000", "cam.batch_size"),
        ("cam", "proxy_images_per_class = 0", "cam.proxy_images_per_class"),
    ] {
        let text = format!("{MINIMAL}[{section}]\n{line}\n");
        let err = format!("{:#}", parse(&text, Path::new("n.toml")).unwrap_err());
        assert!(err.contains(key) && err.contains("n.toml"), "{line}: {err}");
    }
    for line in ["max_classes = 0", "max_per_class = 0", "image_size = 8"] {
        let err =
            format!("{:#}", parse(&format!("{MINIMAL}{line}\n"), Path::new("d.toml")).unwrap_err());
        let key = format!("dataset.{}", line.split(' ').next().unwrap());
        assert!(err.contains(&key) && err.contains("d.toml"), "{line}: {err}");
    }
    // A ResNet downsamples by 32: a 16-pixel input is refused, naming the minimum.
    let text = format!("{MINIMAL}image_size = 16\n[model]\nbackbone = \"resnet18\"\n");
    let err = format!("{:#}", parse(&text, Path::new("r.toml")).unwrap_err());
    assert!(err.contains("dataset.image_size") && err.contains("at least 32"), "{err}");
}

#[test]
fn numbers_at_the_ends_of_their_ranges_are_accepted() {
    for (section, line) in [
        ("model", "embedding_dim = 1"),
        ("model", "embedding_dim = 4096"),
        ("train", "p = 4\nk = 1024"),
        ("train", "p = 1024\nk = 4"),
        ("train", "epochs = 1"),
        ("eval", "faithfulness_steps = 1"),
        ("eval", "faithfulness_steps = 1000"),
        ("eval", "max_images = 1"),
        ("cam", "knn = 1024\nbatch_size = 1024\nproxy_images_per_class = 1"),
    ] {
        let text = format!("{MINIMAL}[{section}]\n{line}\n");
        assert!(parse(&text, Path::new("ok.toml")).is_ok(), "{line}");
    }
    let text = format!("{MINIMAL}image_size = 32\n[model]\nbackbone = \"resnet50\"\n");
    assert!(parse(&text, Path::new("ok.toml")).is_ok());
}

#[test]
fn duplicates_are_refused_with_their_key_and_the_file() {
    for (head, section, line, key, value) in [
        (
            "",
            "cam",
            "proxies = [\"normalized-mean\", \"normalized-mean\"]",
            "cam.proxies",
            "`normalized-mean`",
        ),
        (
            "",
            "cam",
            "methods = [\"eigencam\", \"embeddingcam\", \"eigencam\"]",
            "cam.methods",
            "`eigencam`",
        ),
        ("", "cam", "stages = [\"block3\", \"block3\"]", "cam.stages", "`block3`"),
        ("", "eval", "baselines = [\"untrained\", \"untrained\"]", "eval.baselines", "`untrained`"),
        ("seeds = [0, 1, 0]\n", "train", "", "`seeds`", " 0 "),
        ("", "grid", "\"train.margin\" = [0.1, 0.2, 0.1]", "`train.margin`", "0.1"),
        ("", "grid", "\"cam.target\" = [\"pre-l2\", \"pre-l2\"]", "`cam.target`", "pre-l2"),
        // Two spellings of one number make the same experiment.
        ("", "grid", "\"train.margin\" = [1, 1.0]", "train.margin=1", "same experiment"),
    ] {
        let text = format!("{head}{MINIMAL}[{section}]\n{line}\n");
        let err = format!("{:#}", parse(&text, Path::new("x/dup.toml")).unwrap_err());
        assert!(
            err.contains(key) && err.contains(value) && err.contains("x/dup.toml"),
            "{line}: {err}"
        );
    }
}

#[test]
fn a_typo_names_the_key_and_the_file() {
    let text = format!("{MINIMAL}[train]\nmargn = 0.3\n");
    let err = format!("{:#}", parse(&text, Path::new("x/typo.toml")).unwrap_err());
    assert!(err.contains("x/typo.toml") && err.contains("margn"), "{err}");
    let err = format!(
        "{:#}",
        parse(&format!("{MINIMAL}[cam]\nmethods = [\"gradcam+\"]\n"), Path::new("a.toml"))
            .unwrap_err()
    );
    assert!(err.contains("gradcam+") && err.contains("gradcam++"), "{err}");
}

#[test]
fn grid_is_a_cartesian_product_times_seeds() {
    let text = format!(
        "seeds = [1, 2]\n{MINIMAL}[grid]\n\"train.margin\" = [0.1, 0.3]\n\"dataset.image_size\" = [32, 64, 96]\n"
    );
    let e = parse(&text, Path::new("g.toml")).expect("valid");
    assert_eq!(e.len(), 2 * 3 * 2);
    assert_eq!(e[0].cell, "dataset.image_size=32,train.margin=0.1");
    assert_eq!(e[0].file.train.margin, 0.1);
    assert_eq!(e[3].file.train.margin, 0.3);
    assert_eq!((e[2].seed, e[3].seed), (1, 2));
    let bad = format!("{MINIMAL}[grid]\n\"train.margn\" = [0.1]\n");
    let err = format!("{:#}", parse(&bad, Path::new("g.toml")).unwrap_err());
    assert!(err.contains("margn") && err.contains("g.toml"), "{err}");
}

#[test]
fn ground_truth_needs_synthcub_and_its_caps_are_checked() {
    let cub = "[dataset]\nkind = \"cub\"\npath = \"datasets/CUB_200_2011\"\n[benchmark]\n";
    let err = format!(
        "{:#}",
        parse(&format!("{cub}ground_truth = true\n"), Path::new("c.toml")).unwrap_err()
    );
    assert!(
        err.contains("benchmark.ground_truth") && err.contains("synth") && err.contains("c.toml"),
        "{err}"
    );
    // The sanity checks need no interventions: real CUB takes them.
    parse(&format!("{cub}sanity_checks = true\n"), Path::new("c.toml")).expect("valid");
    for (line, key) in [
        ("ground_truth_images = 0", "benchmark.ground_truth_images"),
        ("sanity_images = 0", "benchmark.sanity_images"),
        ("sanity_images = 10001", "benchmark.sanity_images"),
    ] {
        let text = format!("{MINIMAL}[benchmark]\n{line}\n");
        let err = format!("{:#}", parse(&text, Path::new("s.toml")).unwrap_err());
        assert!(err.contains(key), "{line}: {err}");
    }
    // Off, the section is left out of the resolved file (stage keys stay as before).
    let e = parse(MINIMAL, Path::new("m.toml")).expect("valid");
    assert!(!toml::to_string(&e[0].file).unwrap().contains("benchmark"));
}
