//! SynthCUB: byte-for-byte determinism, the class table and the interventions.

use std::collections::BTreeMap;
use std::path::Path;

use embcam_cub::load::{TrainTransform, Transform, load_image};
use embcam_cub::synth::{
    Difficulty, PartLabels, SynthConfig, generate, interventions_made_at, load_render,
    read_discriminative_parts, read_interventions, render_interventions,
};
use embcam_cub::{DEFAULT_MASK_THRESHOLD, Dataset, Silent};
use sha2::{Digest, Sha256};

/// Path → SHA-256 of every file under `dir`.
fn tree_hash(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let digest = Sha256::digest(std::fs::read(&p).unwrap());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                out.insert(p.strip_prefix(base).unwrap().display().to_string(), hex);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn make(dir: &Path, seed: u64, threads: usize) -> BTreeMap<String, String> {
    let cfg = SynthConfig {
        classes: 4,
        images_per_class: 5,
        min_side: 64,
        max_side: 96,
        seed,
        ..SynthConfig::default()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| generate(dir, &cfg, &Silent)).unwrap();
    tree_hash(dir)
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let a = make(&tmp.path().join("a"), 11, 1);
    let b = make(&tmp.path().join("b"), 11, 3);
    assert_eq!(a.len(), 20 * 2 + 9, "20 images, 20 masks, 9 index/side files");
    assert_eq!(a, b);
    let c = make(&tmp.path().join("c"), 12, 2);
    assert_ne!(a, c);
}

#[test]
fn refuses_to_overwrite_and_leaves_no_partial_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    make(&out, 1, 2);
    let cfg = SynthConfig {
        classes: 2,
        images_per_class: 1,
        min_side: 64,
        max_side: 64,
        seed: 1,
        ..SynthConfig::default()
    };
    let err = generate(&out, &cfg, &Silent).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    let bad = SynthConfig { classes: 1, ..cfg };
    assert!(generate(&tmp.path().join("e"), &bad, &Silent).is_err());
    let names: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no partial folders left: {names:?}");
}

#[test]
fn class_table_names_a_discriminative_part_per_class() {
    let tmp = tempfile::tempdir().unwrap();
    make(&tmp.path().join("s"), 5, 2);
    let parts = read_discriminative_parts(&tmp.path().join("s/CUB_200_2011")).unwrap().unwrap();
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|&(_, p)| [2, 5, 9, 14].contains(&p)));
    // Pairs share their distinguishing part.
    assert_eq!(parts[0].1, parts[1].1);
    assert_eq!(parts[2].1, parts[3].1);
    assert_eq!(read_discriminative_parts(tmp.path()).unwrap(), None);
}

/// Mean box share of the frame and mean box centre (relative), read back from the written files.
fn geometry(dir: &Path) -> (f32, f32, f32) {
    let ds = Dataset::open(&dir.join("CUB_200_2011"), None).unwrap();
    let (mut area, mut cx, mut cy) = (0.0, 0.0, 0.0);
    for rec in &ds.images {
        let (w, h) = image::image_dimensions(ds.image_path(rec)).unwrap();
        let (w, h) = (w as f32, h as f32);
        area += rec.bbox.w * rec.bbox.h / (w * h);
        cx += (rec.bbox.x + rec.bbox.w / 2.0) / w;
        cy += (rec.bbox.y + rec.bbox.h / 2.0) / h;
    }
    let n = ds.images.len() as f32;
    (area / n, cx / n, cy / n)
}

#[test]
fn geometry_follows_cub_and_the_difficulty_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let base = SynthConfig {
        classes: 4,
        images_per_class: 30,
        min_side: 120,
        max_side: 140,
        ..SynthConfig::default()
    };
    generate(&tmp.path().join("std"), &base, &Silent).unwrap();
    // CUB-200-2011's test split: box share 0.34 on average, centre (0.50, 0.52).
    let (area, cx, cy) = geometry(&tmp.path().join("std"));
    assert!((0.26..0.42).contains(&area), "mean box share {area}");
    assert!((0.44..0.56).contains(&cx) && (0.46..0.58).contains(&cy), "centre ({cx}, {cy})");
    let hard = SynthConfig { difficulty: Difficulty::hard(), ..base };
    generate(&tmp.path().join("hard"), &hard, &Silent).unwrap();
    let (small, _, _) = geometry(&tmp.path().join("hard"));
    assert!(small < 0.7 * area, "hard birds {small} vs standard {area}");
    // The stamp tells the two apart.
    assert!(hard.made_at(&tmp.path().join("hard")) && !base.made_at(&tmp.path().join("hard")));
}

#[test]
fn out_of_range_settings_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = SynthConfig {
        classes: 2,
        images_per_class: 1,
        min_side: 64,
        max_side: 64,
        ..SynthConfig::default()
    };
    let huge = SynthConfig { classes: 999, images_per_class: 300_000_000, ..ok };
    let err = generate(&tmp.path().join("a"), &huge, &Silent).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
    for d in [
        Difficulty { bird_area: 0.9, ..Difficulty::standard() },
        Difficulty { clutter: -0.1, ..Difficulty::standard() },
        Difficulty { occlusion: 1.5, ..Difficulty::standard() },
        Difficulty { pair_differences: 0, ..Difficulty::standard() },
    ] {
        let err = generate(&tmp.path().join("b"), &SynthConfig { difficulty: d, ..ok }, &Silent)
            .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn folders_of_killed_generations_are_removed_and_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    // A generation killed with Ctrl-C leaves `.NAME.partial-PID`; PID 4194304 is above Linux's
    // pid_max, so no process has it. PID 1 always runs: its folder must stay.
    let dead = tmp.path().join(".s.partial-4194304");
    let live = tmp.path().join(".s.partial-1");
    let other = tmp.path().join(".t.partial-4194304");
    for d in [&dead, &live, &other] {
        std::fs::create_dir_all(d.join("CUB_200_2011")).unwrap();
    }
    let cfg = SynthConfig {
        classes: 2,
        images_per_class: 1,
        min_side: 64,
        max_side: 64,
        ..SynthConfig::default()
    };
    generate(&tmp.path().join("s"), &cfg, &Silent).unwrap();
    assert!(!dead.exists(), "the killed generation's folder is left");
    assert!(live.exists() && other.exists(), "another dataset's or a live folder was removed");
}

/// SHA-256 of the `path hash` lines of [`tree_hash`].
fn tree_digest(tree: &BTreeMap<String, String>) -> String {
    let lines: String = tree.iter().map(|(p, h)| format!("{p} {h}\n")).collect();
    Sha256::digest(lines).iter().map(|b| format!("{b:02x}")).collect()
}

fn small(seed: u64, difficulty: Difficulty) -> SynthConfig {
    SynthConfig { classes: 6, images_per_class: 5, min_side: 120, max_side: 160, seed, difficulty }
}

#[test]
fn generated_datasets_keep_their_bytes() {
    // The reference digest was computed before interventions existed: `embcam synth DIR
    // --classes 6 --images-per-class 5 --min-side 120 --max-side 160 --seed 3` (commit b5a71d0),
    // then in Python `sha256("".join(f"{path} {sha256(file)}\n" for path in sorted(files)))`.
    // The quickstart's published results depend on these bytes.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let cfg = small(3, Difficulty::standard());
    generate(&out, &cfg, &Silent).unwrap();
    let before = tree_hash(&out);
    assert_eq!(before.len(), 69);
    assert_eq!(
        tree_digest(&before),
        "340fd18f15cb5fb9f77959ba1044a53bbe96217cfe73ddf698910031c5f1a685"
    );
    // Rendering interventions adds a folder and changes nothing else.
    render_interventions(&out, &cfg, None, &Silent).unwrap();
    let after = tree_hash(&out);
    let dataset: BTreeMap<_, _> =
        after.into_iter().filter(|(p, _)| !p.starts_with("interventions/")).collect();
    assert_eq!(dataset, before);
}

#[test]
fn interventions_are_deterministic_and_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small(8, Difficulty::easy());
    let mut trees = Vec::new();
    for (name, threads) in [("a", 1), ("b", 2)] {
        let out = tmp.path().join(name);
        generate(&out, &cfg, &Silent).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let s = pool.install(|| render_interventions(&out, &cfg, None, &Silent)).unwrap();
        assert_eq!(s.images, 30);
        // Cached: a second call renders nothing and reports the same.
        assert_eq!(render_interventions(&out, &cfg, None, &Silent).unwrap(), s);
        trees.push(tree_hash(&out.join("interventions")));
    }
    assert_eq!(trees[0], trees[1]);

    let out = tmp.path().join("a");
    let ds = Dataset::open(&out.join("CUB_200_2011"), Some(&out.join("segmentations"))).unwrap();
    let disc = read_discriminative_parts(&out.join("CUB_200_2011")).unwrap().unwrap();
    let all = read_interventions(&out).unwrap();
    assert_eq!(all.len(), 30);
    for e in &all {
        let rec = ds.image(e.image_id).unwrap();
        let labels = PartLabels::read(&e.part_labels, e.image_id).unwrap();
        let mask = ds.read_mask(rec).unwrap().unwrap();
        assert_eq!((labels.width, labels.height), (mask.width, mask.height));
        // Part regions lie inside the mask's foreground.
        let fg = mask.binary(DEFAULT_MASK_THRESHOLD);
        assert!(labels.labels.iter().zip(&fg).all(|(&l, &f)| l == 0 || f), "{}", e.image_id);
        // One removal per non-empty region, and never both wings (only the near one is drawn).
        let areas = labels.areas();
        let removed: Vec<u32> = e.removed.iter().map(|(p, _)| *p).collect();
        let present: Vec<u32> = (1..=15).filter(|&k| areas[k as usize] > 0).collect();
        assert_eq!(removed, present);
        assert!(!(areas[9] > 0 && areas[13] > 0));
        // The discriminative part as visible: the class table's, with the wing on the near side.
        let table = disc.iter().find(|(c, _)| *c == rec.class_id).unwrap().1;
        if table == 9 {
            assert!(e.discriminative_part == 9 || e.discriminative_part == 13);
            if areas[9] + areas[13] > 0 {
                assert!(areas[e.discriminative_part as usize] > 0);
            }
        } else {
            assert_eq!(e.discriminative_part, table);
        }
        for path in [&e.counterfactual, &e.background, &e.no_bird] {
            let img = image::open(path).unwrap();
            assert_eq!((img.width(), img.height()), (mask.width, mask.height));
        }
        // A render loads like its dataset image: the dataset image itself loads identically.
        let tf = Transform::Train(TrainTransform::new(40, 3));
        let (id, class) = (e.image_id, rec.class_id);
        let direct = load_image(&ds, rec, &tf, 2).unwrap();
        assert_eq!(load_render(&ds.image_path(rec), id, class, &tf, 2).unwrap(), direct);
        assert_eq!(load_render(&e.no_bird, id, class, &tf, 2).unwrap().geometry, direct.geometry);
    }
}

#[test]
fn interventions_of_some_images_only_and_grown_on_demand() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small(4, Difficulty::standard());
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    for out in [&full, &part] {
        generate(out, &cfg, &Silent).unwrap();
    }
    render_interventions(&full, &cfg, None, &Silent).unwrap();
    let ids = |out: &Path| -> Vec<u32> {
        read_interventions(out).unwrap().iter().map(|e| e.image_id).collect()
    };
    let s = render_interventions(&part, &cfg, Some(&[5, 3]), &Silent).unwrap();
    assert_eq!((s.images, ids(&part)), (2, vec![3, 5]));
    assert!(interventions_made_at(&part, &cfg, Some(&[3])));
    assert!(!interventions_made_at(&part, &cfg, Some(&[1])));
    assert!(!interventions_made_at(&part, &cfg, None));
    // Asking for a subset of what is there renders nothing.
    assert_eq!(render_interventions(&part, &cfg, Some(&[5]), &Silent).unwrap(), s);
    // A new id grows the folder to the union.
    render_interventions(&part, &cfg, Some(&[1]), &Silent).unwrap();
    assert_eq!(ids(&part), vec![1, 3, 5]);
    // An image's files are the same bytes whether rendered alone or with the whole dataset.
    let full_tree = tree_hash(&full.join("interventions"));
    for (path, digest) in tree_hash(&part.join("interventions")) {
        if path.ends_with(".jpg") || path.ends_with(".png") {
            assert_eq!(full_tree.get(&path), Some(&digest), "{path}");
        }
    }
    let err = render_interventions(&part, &cfg, Some(&[999]), &Silent).unwrap_err().to_string();
    assert!(err.contains("image id 999"), "{err}");
}

#[test]
fn interventions_need_their_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let cfg = small(2, Difficulty::standard());
    let err = render_interventions(&out, &cfg, None, &Silent).unwrap_err().to_string();
    assert!(err.contains("generate the dataset first"), "{err}");
    generate(&out, &cfg, &Silent).unwrap();
    let other = SynthConfig { seed: 3, ..cfg };
    assert!(render_interventions(&out, &other, None, &Silent).is_err());
    // A stray folder from other settings is not taken for this dataset's interventions.
    std::fs::create_dir_all(out.join("interventions")).unwrap();
    let err = render_interventions(&out, &cfg, None, &Silent).unwrap_err().to_string();
    assert!(err.contains("remove it"), "{err}");
    assert!(read_interventions(&out).is_err());
}
