//! Bad input is an error that says what and where; nothing panics.

use embcam_cam::{
    CamError, CamOptions, Embeddings, Method, ProxyBank, ProxyBatch, ProxySpec, Query, explain,
};
use embcam_cub::Silent;

use crate::common::*;

fn ones(b: usize, d: usize) -> ProxyBatch {
    ProxyBatch::from_vectors(
        (10..10 + b as u32).collect(),
        vec!["p".into()],
        vec![vec![vec![1.0; d]]; b],
    )
    .unwrap()
}

#[test]
fn unknown_stage_lists_the_stages() {
    let net = TinyNet::small(101, false);
    let err = explain(
        &net,
        images(102, 2, 16),
        &ones(2, 5),
        Method::GradCam,
        &CamOptions::new("layer9"),
        &Silent,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CamError::UnknownStage { .. }));
    assert!(msg.contains("layer9") && msg.contains("block1, block2"), "{msg}");
}

#[test]
fn wrong_proxy_dimension_names_the_image() {
    let net = TinyNet::small(103, false);
    let err = explain(
        &net,
        images(104, 2, 16),
        &ones(2, 7),
        Method::GradCam,
        &CamOptions::new("block2"),
        &Silent,
    )
    .unwrap_err();
    assert!(matches!(err, CamError::ProxyDim { expected: 5, got: 7, .. }), "{err}");
    assert!(err.to_string().contains("image 10"), "{err}");
    // Mixed dimensions inside a batch: the image and column are named.
    let bad = ProxyBatch::from_vectors(
        vec![1, 2],
        vec!["p".into()],
        vec![vec![vec![1.0; 5]], vec![vec![1.0; 4]]],
    )
    .unwrap_err();
    assert!(bad.to_string().contains("image 2") && bad.to_string().contains("`p`"), "{bad}");
    // More images than proxy rows.
    let err = explain(
        &net,
        images(104, 3, 16),
        &ones(2, 5),
        Method::GradCam,
        &CamOptions::new("block2"),
        &Silent,
    )
    .unwrap_err();
    assert!(matches!(err, CamError::Shape(_)), "{err}");
}

#[test]
fn non_finite_values_name_the_image_or_class() {
    let err = Embeddings::new(vec![5, 6], vec![0, 0], 2, vec![1.0, 0.0, f32::NAN, 1.0], "eval")
        .unwrap_err();
    assert!(
        matches!(err, CamError::NonFinite { .. }) && err.to_string().contains("image 6"),
        "{err}"
    );
    let err =
        ProxyBatch::from_vectors(vec![3], vec!["q".into()], vec![vec![vec![f32::INFINITY, 0.0]]])
            .unwrap_err();
    assert!(err.to_string().contains("image 3"), "{err}");
    // A NaN input makes a NaN embedding: an error naming the image, not NaN maps.
    let net = TinyNet::small(105, false);
    let mut x = to_vec(images(106, 2, 16));
    x[3 * 16 * 16 + 5] = f32::NAN; // inside image 1
    let x = tensor(x, [2, 3, 16, 16], &device());
    let err = explain(&net, x, &ones(2, 5), Method::GradCam, &CamOptions::new("block2"), &Silent)
        .unwrap_err();
    assert!(
        matches!(err, CamError::NonFinite { .. }) && err.to_string().contains("image 11"),
        "{err}"
    );
}

#[test]
fn empty_class_names_the_class() {
    let table = Embeddings::new(
        vec![1, 2, 3],
        vec![0, 0, 9],
        2,
        vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        "eval",
    )
    .unwrap();
    let bank = ProxyBank::new(table).unwrap();
    let e = [1.0f32, 0.5];
    // Class 4 has no image in the proxy set.
    let err = bank
        .resolve(
            &ProxySpec::ClassMean { leave_query_out: false },
            &Query { id: 50, label: 4, embedding: &e },
        )
        .unwrap_err();
    assert!(
        matches!(err, CamError::EmptyClass { class: 4, .. }) && err.to_string().contains("class 4"),
        "{err}"
    );
    // Class 9's only image is the query, left out.
    let err = bank
        .resolve(
            &ProxySpec::ClassMean { leave_query_out: true },
            &Query { id: 3, label: 9, embedding: &e },
        )
        .unwrap_err();
    assert!(matches!(err, CamError::EmptyClass { class: 9, .. }), "{err}");
    // A query of the wrong dimension.
    let err = bank
        .resolve(&ProxySpec::SinglePoint, &Query { id: 8, label: 0, embedding: &[1.0] })
        .unwrap_err();
    assert!(
        matches!(err, CamError::ProxyDim { .. }) && err.to_string().contains("image 8"),
        "{err}"
    );
    // k larger than the proxy set.
    assert!(
        bank.resolve(&ProxySpec::Knn { k: 3 }, &Query { id: 1, label: 0, embedding: &e }).is_err()
    );
    // A classifier row without a classifier.
    assert!(
        bank.resolve(
            &ProxySpec::ClassifierRow { class: None },
            &Query { id: 1, label: 0, embedding: &e }
        )
        .is_err()
    );
}
