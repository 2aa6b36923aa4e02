//! Malformed datasets, made by damaging a generated one: each problem gives its error, naming the
//! file, the line and the image id; `validate` reports all of them at once.

use embcam_cub::load::{EvalTransform, Transform, load_image};
use embcam_cub::{CubError, Dataset, Silent, validate};

use crate::fixture::Fixture;

fn open_err(fx: &Fixture) -> String {
    Dataset::open(&fx.root(), Some(&fx.seg())).unwrap_err().to_string()
}

#[test]
fn missing_index_file_names_the_file() {
    let fx = Fixture::new(2, 2, 0);
    std::fs::remove_file(fx.root().join("image_class_labels.txt")).unwrap();
    let err = open_err(&fx);
    assert!(err.contains("image_class_labels.txt"), "{err}");
}

#[test]
fn short_line_names_file_and_line() {
    let fx = Fixture::new(2, 3, 0);
    fx.set_line("bounding_boxes.txt", 5, "5 1.0 2.0");
    let err = open_err(&fx);
    assert!(err.contains("bounding_boxes.txt:5:") && err.contains("x y w h"), "{err}");
}

#[test]
fn non_number_names_file_line_and_value() {
    let fx = Fixture::new(2, 3, 0);
    fx.set_line("image_class_labels.txt", 2, "2 two");
    let err = open_err(&fx);
    assert!(err.contains("image_class_labels.txt:2:") && err.contains("`two`"), "{err}");
    fx.set_line("image_class_labels.txt", 2, "x 1");
    assert!(open_err(&fx).contains("`x` is not a valid id"));
}

#[test]
fn id_missing_from_one_file_is_named() {
    let fx = Fixture::new(2, 3, 0);
    fx.remove_line("train_test_split.txt", 4);
    let err = open_err(&fx);
    assert!(err.contains("image id 4") && err.contains("train_test_split.txt"), "{err}");
    // And the other direction: an id in a side file that images.txt lacks.
    let fx = Fixture::new(2, 3, 0);
    fx.remove_line("images.txt", 6);
    let report = validate(&fx.root(), Some(&fx.seg()), &Silent);
    let missing = report.problems.iter().filter(|p| matches!(p, CubError::MissingId { id: 6, .. }));
    // labels, split, boxes and part locations each name it once.
    assert_eq!(missing.count(), 4, "{report}");
}

#[test]
fn duplicate_and_unknown_ids() {
    let fx = Fixture::new(2, 3, 0);
    fx.set_line("images.txt", 3, "2 001.whatever/x.jpg");
    let err = open_err(&fx);
    assert!(err.contains("images.txt:3:") && err.contains("id 2 appears again"), "{err}");
    let fx = Fixture::new(2, 3, 0);
    fx.set_line("image_class_labels.txt", 1, "1 77");
    let err = open_err(&fx);
    assert!(err.contains("image_class_labels.txt:1:") && err.contains("class id 77"), "{err}");
}

#[test]
fn box_outside_the_image_is_reported_with_its_line() {
    let fx = Fixture::new(2, 3, 0);
    fx.set_line("bounding_boxes.txt", 3, "3 10.0 10.0 5000.0 20.0");
    // Opening does not decode images; validating does and reports the box.
    let report = validate(&fx.root(), Some(&fx.seg()), &Silent);
    let msg = report.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert_eq!(report.problems.len(), 1, "{msg}");
    assert!(msg.contains("bounding_boxes.txt:3:") && msg.contains("image id 3"), "{msg}");
}

#[test]
fn truncated_and_garbage_images_are_decode_errors() {
    let fx = Fixture::new(2, 3, 0);
    let ds = Dataset::open(&fx.root(), None).unwrap();
    let (a, b) = (ds.image_path(&ds.images[1]), ds.image_path(&ds.images[4]));
    let bytes = std::fs::read(&a).unwrap();
    std::fs::write(&a, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(&b, b"not an image at all").unwrap();
    let report = validate(&fx.root(), Some(&fx.seg()), &Silent);
    let msgs: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains("image id 2") && msgs[0].contains("truncated"), "{}", msgs[0]);
    assert!(msgs[1].contains("image id 5") && msgs[1].contains("cannot decode"), "{}", msgs[1]);
    assert_eq!(report.summary.decoded, 4);
    // Loading reports it too.
    let t = Transform::Eval(EvalTransform::squash(16));
    let err = load_image(&ds, &ds.images[1], &t, 0).unwrap_err();
    assert!(matches!(err, CubError::Decode { id: 2, .. }));
}

#[test]
fn bytes_after_a_complete_jpeg_are_accepted() {
    // Zero padding or a maker's trailer after the end-of-image marker: every decoder reads the
    // file, so `validate` and loading must too, with the same pixels.
    let fx = Fixture::new(2, 3, 0);
    let ds = Dataset::open(&fx.root(), None).unwrap();
    let (rec, t) = (&ds.images[1], Transform::Eval(EvalTransform::squash(16)));
    let path = ds.image_path(rec);
    let whole = std::fs::read(&path).unwrap();
    assert!(whole.starts_with(&[0xFF, 0xD8]), "the fixture's images are JPEGs");
    let pixels = load_image(&ds, rec, &t, 0).unwrap();
    for pad in [100, 10_000] {
        std::fs::write(&path, [&whole[..], &vec![0u8; pad][..]].concat()).unwrap();
        let report = validate(&fx.root(), Some(&fx.seg()), &Silent);
        assert!(report.is_ok(), "{pad} trailing zero bytes: {report}");
        assert_eq!(load_image(&ds, rec, &t, 0).unwrap(), pixels, "{pad} trailing zero bytes");
    }
}

#[test]
fn mask_of_the_wrong_size_names_both_files() {
    let fx = Fixture::new(2, 3, 0);
    let ds = Dataset::open(&fx.root(), Some(&fx.seg())).unwrap();
    let rec = &ds.images[2];
    let path = ds.mask_path(rec).unwrap();
    image::GrayImage::new(7, 5).save(&path).unwrap();
    let err = ds.read_mask(rec).unwrap_err().to_string();
    assert!(err.contains("image id 3") && err.contains("7×5"), "{err}");
    assert!(err.contains(".png") && err.contains(".jpg"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = ds.read_mask(rec).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn validate_reports_every_problem_and_open_counts_them() {
    let fx = Fixture::new(3, 3, 0);
    fx.set_line("bounding_boxes.txt", 2, "2 1 2 3");
    fx.set_line("train_test_split.txt", 5, "5 maybe");
    fx.set_line("parts/part_locs.txt", 1, "1 99 0.0 0.0 0");
    let report = validate(&fx.root(), Some(&fx.seg()), &Silent);
    // The bad box line, the bad flag, the unknown part, and the two images that lack a box/flag.
    assert_eq!(report.problems.len(), 5, "{report}");
    assert_eq!(report.summary.images, 7);
    let err = open_err(&fx);
    assert!(err.contains("and 4 more problems"), "{err}");
}

#[test]
fn a_clean_dataset_validates_with_a_summary() {
    let fx = Fixture::new(4, 5, 2);
    let report = validate(&fx.root(), Some(&fx.seg()), &Silent);
    assert!(report.is_ok(), "{report}");
    let s = &report.summary;
    assert_eq!((s.classes, s.images, s.decoded, s.masks), (4, 20, 20, 20));
    assert_eq!((s.disjoint_train, s.disjoint_eval), (10, 10));
    assert_eq!(s.official_train + s.official_test, 20);
    assert!(s.visible_parts > 20 * 8, "{s:?}");
    assert!(report.to_string().ends_with("ok: no problems found"));
}
