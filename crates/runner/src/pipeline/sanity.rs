//! The sanity-check stage (`[benchmark] sanity_checks`): Adebayo et al.'s model randomisation
//! (NeurIPS 2018). For each step — cascading from the head down, then each layer alone
//! ([`embcam_model::randomize`]) — the layers are re-drawn from their initialisation, the first
//! `benchmark.sanity_images` evaluation images are explained again with the **trained** network's
//! proxies, and each map is compared with the trained network's map (Spearman's ρ and SSIM on the
//! max-normalised maps at the input's resolution, [`embcam_eval::compare_maps`]). Chen et al. is
//! left out (its weights are fitted per network).

use anyhow::Result;
use embcam_cam::{CamOutput, ProxySpec};
use embcam_cub::Silent;
use embcam_cub::load::load_batch;
use embcam_eval::{Heatmap, MapSimilarity};
use embcam_model::Net;
use embcam_model::randomize::{cascading_steps, independent_steps, layers, randomize_layers};
use serde::{Deserialize, Serialize};

use super::cam::{
    batch_proxies, cam_methods, cam_names, cam_options, input_tensor, proxy_bank, scored_columns,
};
use super::ground_truth::thin;
use super::{Cached, Job, Trained};
use crate::progress::bar;

/// One randomisation step of one method × proxy × stage, over the images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SanityRow {
    /// `cascade:<deepest layer randomised>` or `independent:<layer>`.
    pub step: String,
    /// How many layers the step randomises.
    pub layers: usize,
    /// The method.
    pub method: String,
    /// The proxy (`-` for a target-free method).
    pub proxy: String,
    /// The stage explained.
    pub stage: String,
    /// Mean Spearman's ρ between the trained and the randomised network's maps.
    pub spearman: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// Images compared.
    pub images: usize,
}

/// What the sanity stage keeps.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Sanity {
    /// One row per step × method × proxy × stage, steps in order (cascading, then independent).
    pub rows: Vec<SanityRow>,
}

/// Run the randomisation steps (module docs).
pub fn sanity(job: &Job<'_>, trained: &Trained) -> Result<Cached<Sanity>> {
    let exp = job.exp;
    let inputs = (
        &trained.stage.key,
        &exp.file.cam,
        &exp.file.dataset.eval_transform,
        exp.file.eval.max_images,
        exp.file.benchmark.sanity_images,
        exp.seed,
    );
    job.cached("sanity", &inputs, "sanity.json", false, |_| {
        let all = job.data.eval_images(exp.file.eval.max_images);
        let images = thin(&all, exp.file.benchmark.sanity_images);
        let (table, bank) = proxy_bank(job, &trained.net, &all)?;
        let resolved = job.resolved;
        let specs: Vec<ProxySpec> = resolved.proxies.iter().map(|(_, s)| *s).collect();
        let batches: Vec<_> = images
            .chunks(exp.file.cam.batch_size)
            .map(|chunk| {
                let batch = load_batch(&job.data.dataset, chunk, &resolved.transform, 0)?;
                let proxies = batch_proxies(&batch, &table, &bank, &specs)?;
                Ok((batch, proxies))
            })
            .collect::<Result<_>>()?;
        let names = cam_names(resolved);
        let cams = cam_methods(resolved);
        let stages = super::cam::stage_names(job, &trained.net)?;
        // The maps of `net`: per stage, per batch, one output per method.
        let maps = |net: &Net| -> Result<Vec<Vec<Vec<CamOutput>>>> {
            stages
                .iter()
                .map(|st| {
                    let opts = cam_options(resolved, st);
                    batches
                        .iter()
                        .map(|(batch, proxies)| {
                            let x = input_tensor(batch, job.device);
                            Ok(embcam_cam::explain_many(net, x, proxies, &cams, &opts, &Silent)?)
                        })
                        .collect()
                })
                .collect()
        };
        let original = maps(&trained.net)?;
        let all_layers = layers(&trained.net);
        let steps: Vec<_> = cascading_steps(&all_layers)
            .into_iter()
            .chain(independent_steps(&all_layers))
            .collect();
        let pb = bar("sanity");
        pb.set_length(steps.len() as u64);
        let mut out = Sanity::default();
        for step in &steps {
            let net = randomize_layers(trained.net.clone(), &step.layers, exp.seed)?;
            let randomised = maps(&net)?;
            for (s, st) in stages.iter().enumerate() {
                for (m, (name, method)) in names.iter().zip(&cams).enumerate() {
                    let columns = scored_columns(resolved, method.is_target_free());
                    for (p, proxy) in columns {
                        let mut sims: Vec<MapSimilarity> = Vec::new();
                        for (k, (batch, _)) in batches.iter().enumerate() {
                            let (a, b) = (&original[s][k][m].maps, &randomised[s][k][m].maps);
                            for i in 0..batch.len() {
                                let heat = |v: Vec<f32>| Heatmap {
                                    width: batch.width,
                                    height: batch.height,
                                    values: v,
                                };
                                sims.push(embcam_eval::compare_maps(
                                    batch.ids[i],
                                    &heat(a.upsampled(i, p)),
                                    &heat(b.upsampled(i, p)),
                                )?);
                            }
                        }
                        let r = embcam_eval::summarize_randomisation(&step.label, &sims)?;
                        out.rows.push(SanityRow {
                            step: step.label.clone(),
                            layers: step.layers.len(),
                            method: name.clone(),
                            proxy,
                            stage: st.clone(),
                            spearman: r.spearman.mean,
                            ssim: r.ssim.mean,
                            images: sims.len(),
                        });
                    }
                }
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok(out)
    })
}
