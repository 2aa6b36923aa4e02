//! Chen et al. 2020: the fitted weights are the gradient of the real (hinged) triplet score,
//! rebuilt here from the recorded triplets; transfer reuses the nearest training image's weights.

use burn::tensor::Tensor;
use embcam_cam::{ChenConfig, ChenWeights, Embeddings, Space, Staged};
use embcam_cub::Silent;

use crate::common::*;

#[test]
fn fitted_weights_are_the_triplet_gradient_and_transfer_reuses_them() {
    let net = TinyNet::small(151, true);
    let n = 8;
    let x = images(152, n, 16);
    let ids: Vec<u32> = (100..100 + n as u32).collect();
    let labels = vec![0, 0, 0, 0, 1, 1, 1, 1];
    let z =
        to_vec(net.forward_from(net.forward_to(x.clone(), "block1").unwrap(), "block1").unwrap());
    let train = Embeddings::new(ids.clone(), labels, 5, z.clone(), "train").unwrap();
    let batches: Vec<_> = (0..n)
        .step_by(3)
        .map(|s| {
            let e = (s + 3).min(n);
            (x.clone().narrow(0, s, e - s), ids[s..e].to_vec())
        })
        .collect();
    for stage in ["block1", "block2"] {
        let cfg = ChenConfig {
            triplets_per_anchor: 5,
            margin: Some(0.5),
            seed: 7,
            ..ChenConfig::default()
        };
        let weights =
            ChenWeights::fit(&net, stage, &train, batches.iter().cloned().map(Ok), &cfg, &Silent)
                .unwrap();
        assert_eq!(weights.len(), n);
        assert_eq!(weights.ids(), ids.as_slice());
        let mut checked = 0;
        // Rebuild anchor i's score s = (1/T) Σ_active ‖y_a − y_n‖² − ‖y_a − y_p‖² with autodiff on A.
        for i in [0, 2, 5, 7] {
            let trip = weights.triplets(i);
            assert_eq!(trip.len(), 5);
            let a = net.forward_to(x.clone().narrow(0, i, 1), stage).unwrap();
            let leaf = a.detach().autodiff().require_grad();
            let y = embcam_cam::Target::dot()
                .on(Space::Normalized)
                .embed(net.forward_from(leaf.clone(), stage).unwrap());
            let mut s: Option<Tensor<1>> = None;
            let unit = |id: u32| {
                let r = (id - 100) as usize;
                let v = &z[r * 5..(r + 1) * 5];
                let nn = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                tensor(v.iter().map(|x| x / nn).collect(), [1, 5], &leaf.device())
            };
            for t in trip {
                let d_p = (y.clone() - unit(t.positive)).square().sum();
                let d_n = (y.clone() - unit(t.negative)).square().sum();
                let hinge = to_vec(d_p.clone() - d_n.clone())[0] + 0.5 > 0.0;
                assert_eq!(hinge, t.active, "the recorded hinge pattern is the real one");
                if t.active {
                    let term = (d_n - d_p).div_scalar(5.0);
                    s = Some(match s {
                        Some(acc) => acc + term,
                        None => term,
                    });
                }
            }
            let Some(s) = s else { continue };
            let g = leaf.grad(&s.backward()).unwrap();
            let alpha = to_vec(g.mean_dims(&[2, 3]));
            let err = rel_err(weights.weights(i), &alpha);
            assert!(err < 1e-5, "{stage} anchor {i}: {err}");
            checked += 1;
        }
        assert!(checked > 0, "at least one anchor with an active triplet was checked");
        // Transfer on the training images themselves: each is its own nearest key.
        let out = weights.explain(&net, x.clone(), &ids, &Silent).unwrap();
        let a = to_vec(net.forward_to(x.clone(), stage).unwrap());
        let (k, hw) = (weights.weights(0).len(), out.maps.h * out.maps.w);
        for i in 0..n {
            let expect: Vec<f32> = (0..hw)
                .map(|p| (0..k).map(|c| weights.weights(i)[c] * a[(i * k + c) * hw + p]).sum())
                .collect();
            assert!(rel_err(out.maps.raw(i, 0), &expect) < 1e-5, "{stage} image {i}");
        }
        // k-means: 3 centres whose weights average their members'.
        let centres = weights.kmeans(3, 10, 1).unwrap();
        assert_eq!(centres.len(), 3);
        let out = centres.explain(&net, x.clone(), &ids, &Silent).unwrap();
        assert!(out.maps.raw_all().iter().all(|v| v.is_finite()));
        assert!(weights.kmeans(0, 1, 1).is_err() && weights.kmeans(9, 1, 1).is_err());
    }
}
