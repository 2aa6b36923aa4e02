//! Triplet loss and mining against hand-worked triplets; cross-entropy against a hand computation.

use burn::tensor::{Device, Tensor, TensorData};
use embcam_model::loss::{Mining, TripletLoss, cross_entropy, mine, pairwise_distances};

use crate::common::host;

/// 1-D points 0, 1 (class 0) and 1.5, 4 (class 1): distances
/// d01 = 1, d02 = 1.5, d03 = 4, d12 = 0.5, d13 = 3, d23 = 2.5.
fn line(device: &Device) -> (Tensor<2>, Vec<u32>) {
    let x = Tensor::from_data(TensorData::new(vec![0.0f32, 1.0, 1.5, 4.0], [4, 1]), device);
    (x, vec![0, 0, 1, 1])
}

fn eval(
    mining: Mining,
    normalize: bool,
    margin: f32,
    x: Tensor<2>,
    labels: &[u32],
) -> (f64, embcam_model::loss::TripletStats) {
    let loss = TripletLoss { margin, mining, normalize };
    let out = loss.forward(x, labels).expect("loss");
    (host(out.loss)[0], out.stats)
}

#[test]
fn all_triplets_average_the_nonzero_losses() {
    // (a,p,n): loss = max(0, d_ap - d_an + 1)
    // (0,1,2) .5  (0,1,3) 0  (1,0,2) 1.5  (1,0,3) 0  (2,3,0) 2  (2,3,1) 3  (3,2,0) 0  (3,2,1) .5
    // 5 active of 8, sum 7.5 -> 1.5
    let device = Device::flex();
    let (x, labels) = line(&device);
    let (loss, stats) = eval(Mining::All, false, 1.0, x, &labels);
    assert!((loss - 1.5).abs() < 1e-6, "{loss}");
    assert_eq!((stats.candidates, stats.mined, stats.active), (8, 8, 5));
    assert!((stats.active_share() - 5.0 / 8.0).abs() < 1e-12);
}

#[test]
fn semi_hard_keeps_only_gaps_in_zero_to_margin() {
    // gap = d_an - d_ap: (0,1,2) .5 ✓  (0,1,3) 3  (1,0,2) -.5  (1,0,3) 2  (2,3,0) -1  (2,3,1) -2
    // (3,2,0) 1.5  (3,2,1) .5 ✓  -> losses .5, .5 -> 0.5
    let device = Device::flex();
    let (x, labels) = line(&device);
    let (loss, stats) = eval(Mining::SemiHard, false, 1.0, x, &labels);
    assert!((loss - 0.5).abs() < 1e-6, "{loss}");
    assert_eq!((stats.candidates, stats.mined, stats.active), (8, 2, 2));
}

#[test]
fn batch_hard_takes_farthest_positive_and_nearest_negative() {
    // a=0: p=1, n=2 -> 1-1.5+1 = .5 ; a=1: p=0, n=2 -> 1-.5+1 = 1.5
    // a=2: p=3, n=1 -> 2.5-.5+1 = 3  ; a=3: p=2, n=1 -> 2.5-3+1 = .5   -> 5.5/4 = 1.375
    let device = Device::flex();
    let (x, labels) = line(&device);
    let (loss, stats) = eval(Mining::BatchHard, false, 1.0, x, &labels);
    assert!((loss - 1.375).abs() < 1e-6, "{loss}");
    assert_eq!((stats.candidates, stats.mined, stats.active), (4, 4, 4));
    let dist = host(pairwise_distances(line(&device).0));
    let (triplets, _) = mine(&dist, &labels, 1.0, Mining::BatchHard);
    assert_eq!(triplets, vec![(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)]);
}

#[test]
fn normalised_embeddings_use_distances_on_the_sphere() {
    // (2,0) -> (1,0) and (3,3) -> (1,1)/√2 of class 0, (0,5) -> (0,1) of class 1.
    // d01 = d12 = sqrt(2 - √2), d02 = √2. m = 0.2:
    // (0,1,2): sqrt(2-√2) - √2 + .2 < 0 ; (1,0,2): d10 - d12 + .2 = .2  -> loss .2, 1 active of 2
    let device = Device::flex();
    let x =
        Tensor::from_data(TensorData::new(vec![2.0f32, 0.0, 3.0, 3.0, 0.0, 5.0], [3, 2]), &device);
    let (loss, stats) = eval(Mining::All, true, 0.2, x, &[0, 0, 1]);
    assert!((loss - 0.2).abs() < 1e-6, "{loss}");
    assert_eq!((stats.candidates, stats.active), (2, 1));
}

#[test]
fn batch_without_negatives_gives_zero_loss_and_zero_gradient() {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 2.0, 3.0], [2, 2]), &device)
        .require_grad();
    let out = TripletLoss::new(0.1, Mining::All).forward(x.clone(), &[3, 3]).expect("loss");
    assert_eq!(out.stats.mined, 0);
    let grads = out.loss.backward();
    let g = host(x.grad(&grads).expect("grad"));
    assert!(g.iter().all(|v| *v == 0.0), "{g:?}");
}

#[test]
fn label_count_mismatch_is_an_error() {
    let device = Device::flex();
    let (x, _) = line(&device);
    assert!(TripletLoss::new(0.1, Mining::All).forward(x, &[0, 1]).is_err());
}

#[test]
fn cross_entropy_matches_hand_computation() {
    // row 0: logits (0, ln 3), label 1 -> -ln(3/4) ; row 1: (2, 2), label 0 -> ln 2
    let device = Device::flex();
    let logits =
        Tensor::from_data(TensorData::new(vec![0.0f32, 3f32.ln(), 2.0, 2.0], [2, 2]), &device);
    let loss = host(cross_entropy(logits.clone(), &[1, 0]).expect("ce"))[0];
    let expected = (-(0.75f64).ln() + 2f64.ln()) / 2.0;
    assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    assert!(cross_entropy(logits, &[2, 0]).is_err());
}

#[test]
fn mining_names_parse() {
    for (s, m) in
        [("all", Mining::All), ("semi-hard", Mining::SemiHard), ("batch-hard", Mining::BatchHard)]
    {
        assert_eq!(s.parse::<Mining>().expect("parse"), m);
        assert_eq!(m.to_string(), s);
    }
    assert!("hard".parse::<Mining>().is_err());
}
