//! Proxies against hand-worked examples, with their origins.

use embcam_cam::{Classifier, Embeddings, ProxyBank, ProxyKind, ProxySpec, Query, WrongClassPick};

fn bank() -> ProxyBank {
    // Class 0: (3, 4) and (0, 2); class 1: (−1, 0) and (0, −5); class 2: (1, 1).
    let table = Embeddings::new(
        vec![10, 11, 20, 21, 30],
        vec![0, 0, 1, 1, 2],
        2,
        vec![3.0, 4.0, 0.0, 2.0, -1.0, 0.0, 0.0, -5.0, 1.0, 1.0],
        "eval",
    )
    .unwrap();
    ProxyBank::new(table).unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn normalized_mean_and_leave_one_out() {
    let b = bank();
    // normalize((0.6, 0.8) + (0, 1)) = (0.6, 1.8)/√3.6
    let n = 3.6f32.sqrt();
    let q = Query { id: 10, label: 0, embedding: &[3.0, 4.0] };
    let p = b.resolve(&ProxySpec::ClassMean { leave_query_out: false }, &q).unwrap();
    assert!(close(&p.vector, &[0.6 / n, 1.8 / n]), "{:?}", p.vector);
    assert_eq!(
        (p.origin.kind, p.origin.class, p.origin.images.clone()),
        (ProxyKind::ClassMean, Some(0), vec![10, 11])
    );
    assert_eq!(p.origin.split, "eval");
    // Leaving image 10 out leaves (0, 1).
    let p = b.resolve(&ProxySpec::ClassMean { leave_query_out: true }, &q).unwrap();
    assert!(close(&p.vector, &[0.0, 1.0]), "{:?}", p.vector);
    assert_eq!(p.origin.images, vec![11]);
}

#[test]
fn single_point_predicted_knn_wrong_class() {
    let b = bank();
    let e = [2.0f32, 0.1];
    let q = Query { id: 99, label: 0, embedding: &e };
    let sp = b.resolve(&ProxySpec::SinglePoint, &q).unwrap();
    assert_eq!((sp.vector.clone(), sp.origin.images.clone()), (e.to_vec(), vec![99]));
    // Class means: c0 = (0.316, 0.949), c1 = normalize((−1, −1)), c2 = normalize((1, 1)).
    // (2, 0.1) is nearest to c2.
    let pred = b.resolve(&ProxySpec::PredictedClass { leave_query_out: false }, &q).unwrap();
    assert_eq!((pred.origin.kind, pred.origin.class), (ProxyKind::PredictedClass, Some(2)));
    // Two nearest images by cosine: (1,1) [0.74] and (3,4) [0.64]; mean of units.
    let knn = b.resolve(&ProxySpec::Knn { k: 2 }, &q).unwrap();
    assert_eq!(knn.origin.images, vec![30, 10]);
    let s = [0.5f32.sqrt() + 0.6, 0.5f32.sqrt() + 0.8];
    let n = (s[0] * s[0] + s[1] * s[1]).sqrt();
    assert!(close(&knn.vector, &[s[0] / n, s[1] / n]), "{:?}", knn.vector);
    // Wrong class: nearest other than 0 is 2, farthest is 1; random is never 0.
    let near = b.resolve(&ProxySpec::WrongClass { pick: WrongClassPick::Nearest }, &q).unwrap();
    let far = b.resolve(&ProxySpec::WrongClass { pick: WrongClassPick::Farthest }, &q).unwrap();
    assert_eq!((near.origin.class, far.origin.class), (Some(2), Some(1)));
    for seed in 0..20 {
        let r = b
            .resolve(&ProxySpec::WrongClass { pick: WrongClassPick::Random { seed } }, &q)
            .unwrap();
        assert_ne!(r.origin.class, Some(0));
        assert_eq!(r.origin.kind, ProxyKind::WrongClass);
    }
    // kNN excludes the query itself.
    let own = b
        .resolve(&ProxySpec::Knn { k: 1 }, &Query { id: 30, label: 2, embedding: &[1.0, 1.0] })
        .unwrap();
    assert_ne!(own.origin.images, vec![30]);
}

#[test]
fn classifier_rows_and_batches() {
    let b = bank()
        .with_classifier(Classifier {
            classes: vec![0, 1, 2],
            dim: 2,
            weight: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        })
        .unwrap();
    let q = Query { id: 1, label: 1, embedding: &[1.0, 0.0] };
    let row = b.resolve(&ProxySpec::ClassifierRow { class: None }, &q).unwrap();
    assert_eq!((row.vector.clone(), row.origin.kind), (vec![3.0, 4.0], ProxyKind::ClassifierRow));
    // The top class of W·z: for z = (1, 0) the scores are 1, 3, 5 → class 2; for z = (−1, 0.5)
    // they are 0, −1, −2 → class 0. Whatever the image's own label.
    let top = b.resolve(&ProxySpec::TopClassifierRow, &q).unwrap();
    assert_eq!((top.vector.clone(), top.origin.class), (vec![5.0, 6.0], Some(2)));
    let q_neg = Query { id: 9, label: 7, embedding: &[-1.0, 0.5] };
    assert_eq!(b.resolve(&ProxySpec::TopClassifierRow, &q_neg).unwrap().origin.class, Some(0));
    assert!(bank().resolve(&ProxySpec::TopClassifierRow, &q).is_err(), "no classifier attached");
    let specs = [
        ProxySpec::ClassMean { leave_query_out: false },
        ProxySpec::ClassifierRow { class: Some(2) },
    ];
    let q2 = Query { id: 2, label: 0, embedding: &[0.0, 1.0] };
    let batch = b.batch(&specs, &[q, q2]).unwrap();
    assert_eq!(batch.columns(), &["normalized-mean".to_string(), "classifier-row2".to_string()]);
    assert_eq!((batch.n_images(), batch.n_proxies(), batch.dim()), (2, 2, 2));
    assert_eq!(batch.vector(1, 1), &[5.0, 6.0]);
    assert_eq!(batch.origin(0, 0).class, Some(1));
    assert_eq!(batch.image_ids(), &[1, 2]);
}
