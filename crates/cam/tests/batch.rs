//! A batch of N gives the same maps as N single images (eval mode: images are independent).

use embcam_cam::{CamOptions, ClosedForm, Method, ProxyBatch, explain_many};
use embcam_cub::Silent;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::*;

#[test]
fn batch_equals_single_images() {
    let net = TinyNet::small(51, true);
    let n = 4;
    let x = images(52, n, 16);
    let mut rng = StdRng::seed_from_u64(53);
    let vectors: Vec<Vec<Vec<f32>>> =
        (0..n).map(|_| (0..3).map(|_| randn(&mut rng, 5, 1.0)).collect()).collect();
    let cols: Vec<String> = (0..3).map(|i| format!("p{i}")).collect();
    let ids: Vec<u32> = (0..n as u32).collect();
    let batch = ProxyBatch::from_vectors(ids.clone(), cols.clone(), vectors.clone()).unwrap();
    for (stage, cf) in
        [("block1", ClosedForm::Auto), ("block2", ClosedForm::Auto), ("block2", ClosedForm::Off)]
    {
        let mut opts = CamOptions::new(stage);
        opts.closed_form = cf;
        opts.max_rows = 5; // chunks that cut across images
        opts.score_cam_batch = 3;
        let all = explain_many(&net, x.clone(), &batch, &Method::ALL, &opts, &Silent).unwrap();
        for i in 0..n {
            let xi = x.clone().narrow(0, i, 1);
            let pi = ProxyBatch::from_vectors(vec![ids[i]], cols.clone(), vec![vectors[i].clone()])
                .unwrap();
            let one = explain_many(&net, xi, &pi, &Method::ALL, &opts, &Silent).unwrap();
            for (m_all, m_one) in all.iter().zip(&one) {
                for p in 0..3 {
                    let err = rel_err(m_all.maps.raw(i, p), m_one.maps.raw(0, p));
                    assert!(
                        err < 1e-5,
                        "{stage} {cf:?} {} image {i} proxy {p}: {err}",
                        m_all.maps.method
                    );
                }
            }
        }
    }
}
