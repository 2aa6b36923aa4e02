//! How the map-making stages (explain, ground truth, sanity) call the cam crate: the stages and
//! CAM methods explained, the CAM options, the evaluation embeddings and the proxy bank built from
//! them, each batch's proxies and input tensor. One place, so that every stage's maps are the
//! explained maps.

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use embcam_cam::{
    CamOptions, Classifier, Embeddings, Method, ProxyBank, ProxyBatch, ProxySpec, Query,
};
use embcam_cub::load::Batch;
use embcam_model::train::{NetOutput, embed};
use embcam_model::{Net, Staged};

use super::Job;
use crate::config::vocab::ProxyName;
use crate::config::{Explainer, Resolved};

/// The stages explained: `cam.stages`, or the network's last stage.
pub(super) fn stage_names(job: &Job<'_>, net: &Net) -> Result<Vec<String>> {
    let c = &job.exp.file.cam;
    Ok(if c.stages.is_empty() {
        vec![net.stage_names().last().context("a network has stages")?.to_string()]
    } else {
        c.stages.clone()
    })
}

/// The CAM options of stage `st`: the experiment's target and closed form.
pub(super) fn cam_options(resolved: &Resolved, st: &str) -> CamOptions {
    let mut opts = CamOptions::new(st);
    opts.target = resolved.target.clone();
    opts.closed_form = resolved.closed_form;
    opts
}

/// The CAM methods among the map makers (all but Chen et al.), in order.
pub(super) fn cam_methods(resolved: &Resolved) -> Vec<Method> {
    resolved
        .methods
        .iter()
        .filter_map(|(_, e)| match e {
            Explainer::Cam(m) => Some(*m),
            Explainer::Chen { .. } => None,
        })
        .collect()
}

/// The names of the CAM methods among the map makers, in [`cam_methods`]' order.
pub(super) fn cam_names(resolved: &Resolved) -> Vec<String> {
    resolved
        .methods
        .iter()
        .filter(|(_, e)| matches!(e, Explainer::Cam(_)))
        .map(|(m, _)| m.to_string())
        .collect()
}

/// The map columns a method is scored on, `(column, proxy name)`: every proxy, or the first
/// column alone as `-` for a target-free method (its columns hold the same map).
pub(super) fn scored_columns(resolved: &Resolved, target_free: bool) -> Vec<(usize, String)> {
    if target_free {
        return vec![(0, "-".to_string())];
    }
    resolved.proxies.iter().enumerate().map(|(p, (n, _))| (p, n.to_string())).collect()
}

/// `z` of dataset images `images` under the evaluation transform.
pub(super) fn embed_images(job: &Job<'_>, net: &Net, images: &[usize]) -> Result<Embeddings> {
    let t = job.resolved.transform;
    let e = embed(net, &job.data.dataset, images, t, 32, NetOutput::Raw, job.device)?;
    Ok(Embeddings::new(e.ids, e.labels, net.out_dim(), e.values, "eval")?)
}

/// The embeddings of the evaluation images `images` on `net` and the proxy bank built from them,
/// as the explain stage builds it (the ground-truth and sanity stages reuse it, so that their
/// proxies are the explained maps' proxies).
pub(super) fn proxy_bank(
    job: &Job<'_>,
    net: &Net,
    images: &[usize],
) -> Result<(Embeddings, ProxyBank)> {
    let c = &job.exp.file.cam;
    let table = embed_images(job, net, images)?;
    let mut bank = ProxyBank::new(table.first_per_class(c.proxy_images_per_class)?)?;
    if c.proxies.contains(&ProxyName::ClassScore) {
        let classes = &job.data.split.train_classes;
        bank = bank.with_classifier(Classifier::identity(classes, net.out_dim()))?;
    }
    Ok((table, bank))
}

/// The proxies of `specs` for each image of `batch`, one row per image (ids and labels from the
/// batch, embeddings from `table`).
pub(super) fn batch_proxies(
    batch: &Batch,
    table: &Embeddings,
    bank: &ProxyBank,
    specs: &[ProxySpec],
) -> Result<ProxyBatch> {
    let queries: Vec<Query<'_>> = batch
        .ids
        .iter()
        .zip(&batch.labels)
        .map(|(&id, &label)| {
            let row = table.row_of(id).context("embedded image")?;
            Ok(Query { id, label, embedding: table.row(row) })
        })
        .collect::<Result<_>>()?;
    Ok(bank.batch(specs, &queries)?)
}

/// A batch's pixels as a `[n, 3, h, w]` tensor.
pub(super) fn input_tensor(b: &Batch, device: &Device) -> Tensor<4> {
    let shape = [b.len(), 3, b.height as usize, b.width as usize];
    Tensor::<4>::from_data(TensorData::new(b.pixels.clone(), shape), device)
}
