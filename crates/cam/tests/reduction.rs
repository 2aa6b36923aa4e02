//! The reduction (docs/method.md): for a classifier `Y = W y + b`, Grad-CAM from `∂Y_c/∂A` equals
//! EmbeddingCAM on the penultimate features with proxy `w_c`; and a one-hot proxy on the logits is
//! the same statement.

use embcam_cam::{
    CamOptions, Classifier, ClosedForm, Embeddings, Method, ProxyBank, ProxyBatch, ProxySpec,
    Query, Staged, explain,
};
use embcam_cub::Silent;

use crate::common::*;

/// Grad-CAM for class `c` computed here, by hand: autodiff of `Y_c`, `α = mean ∂Y_c/∂A`,
/// `Σ_k α_k A^k`. Returns the raw maps `[B, h·w]`.
fn hand_gradcam(
    model: &TinyClassifier,
    x: burn::tensor::Tensor<4>,
    stage: &str,
    c: usize,
) -> Vec<f32> {
    let a = model.forward_to(x, stage).unwrap();
    let leaf = a.clone().detach().autodiff().require_grad();
    let y = model.forward_from(leaf.clone(), stage).unwrap(); // [B, C]
    let [b, _] = y.dims();
    let yc = y.narrow(1, c, 1).sum();
    let grads = yc.backward();
    let g = leaf.grad(&grads).unwrap(); // [B, K, h, w]
    let [_, k, h, w] = g.dims();
    let alpha = g.mean_dims(&[2, 3]); // [B, K, 1, 1]
    let raw = (alpha * a).sum_dim(1).reshape([b, h * w]);
    let _ = k;
    to_vec(raw)
}

#[test]
fn classifier_gradcam_equals_embeddingcam_with_the_weight_row() {
    let net = TinyNet::small(11, false);
    let clf = TinyClassifier::new(net.clone(), 4, 12);
    let x = images(13, 3, 16);
    let ids = [1, 2, 3];
    // The proxy bank only needs the classifier for this proxy; its table is a stand-in.
    let table = Embeddings::new(
        vec![100, 101],
        vec![0, 1],
        5,
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        "test",
    )
    .unwrap();
    let bank = ProxyBank::new(table)
        .unwrap()
        .with_classifier(Classifier {
            classes: vec![0, 1, 2, 3],
            dim: 5,
            weight: clf.weight_rows(),
        })
        .unwrap();
    let z = to_vec(net.output(x.clone()));
    for stage in ["block1", "block2"] {
        for c in 0..4u32 {
            let queries: Vec<Query> = ids
                .iter()
                .enumerate()
                .map(|(i, &id)| Query { id, label: c, embedding: &z[i * 5..(i + 1) * 5] })
                .collect();
            let proxies =
                bank.batch(&[ProxySpec::ClassifierRow { class: None }], &queries).unwrap();
            for cf in [ClosedForm::Auto, ClosedForm::Off] {
                let mut opts = CamOptions::new(stage);
                opts.closed_form = cf;
                let out =
                    explain(&net, x.clone(), &proxies, Method::GradCam, &opts, &Silent).unwrap();
                let expect = hand_gradcam(&clf, x.clone(), stage, c as usize);
                let err = rel_err(out.maps.raw_all(), &expect);
                assert!(err < 1e-5, "stage {stage} class {c} {cf:?}: relative error {err}");
                // The ReLU map is H = max(raw, 0) of the same numbers.
                assert_eq!(
                    out.maps.relu(0, 0),
                    out.maps.raw(0, 0).iter().map(|v| v.max(0.0)).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn one_hot_proxy_on_the_logits_is_grad_cam() {
    let clf = TinyClassifier::new(TinyNet::small(21, false), 3, 22);
    let x = images(23, 2, 16);
    for stage in ["block1", "block2"] {
        for c in 0..3 {
            let onehot: Vec<f32> = (0..3).map(|i| if i == c { 1.0 } else { 0.0 }).collect();
            let proxies = ProxyBatch::from_vectors(
                vec![7, 8],
                vec!["onehot".into()],
                vec![vec![onehot.clone()], vec![onehot]],
            )
            .unwrap();
            let out = explain(
                &clf,
                x.clone(),
                &proxies,
                Method::GradCam,
                &CamOptions::new(stage),
                &Silent,
            )
            .unwrap();
            let err = rel_err(out.maps.raw_all(), &hand_gradcam(&clf, x.clone(), stage, c));
            assert!(err < 1e-5, "stage {stage} class {c}: {err}");
        }
    }
}
