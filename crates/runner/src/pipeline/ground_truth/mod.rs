//! The ground-truth stage (`[benchmark] ground_truth`, SynthCUB only): render the dataset's
//! interventions ([`embcam_cub::synth::render_interventions`]), measure the target score
//! `s = sim(z, p)` of every proxy on each image and its renders (each part removed, background
//! swapped, bird removed), explain each image with every CAM method for its own proxies and for
//! the pair class's normalized-mean proxy, and score the maps on the exact part regions
//! ([`embcam_eval::score_parts`]). The map baselines are scored against the first listed proxy's
//! score drops. Chen et al. (fitted per stage) and the untrained network are left out.
//!
//! The first [`GALLERY_IMAGES`](gallery::GALLERY_IMAGES) scored images also get a gallery per stage,
//! `gallery-interventions-<stage>.png` (+ `.csv`): one row per intervention (the original, each
//! part removed, the counterfactual, the background swapped, the bird removed), each method's map
//! for the image's first listed proxy computed on that render, with the changed region outlined (the
//! removed part, the discriminative part, or the bird). [`galleries`](super::galleries) hands
//! them to the run folder beside the explain stage's.

mod gallery;

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use burn::tensor::{Tensor, TensorData};
use embcam_cam::{CamOutput, ProxyBatch, ProxySpec};
use embcam_cub::Silent;
use embcam_cub::load::{Batch, load_batch};
use embcam_cub::synth::{ImageInterventions, PartLabels, load_render};
use embcam_eval::{BackgroundScores, Heatmap, PartInput, PartMetric};
use embcam_model::Net;
use serde::{Deserialize, Serialize};

use self::gallery::{GALLERY_IMAGES, GALLERY_TILE};
use super::cam::{
    batch_proxies, cam_methods, cam_names, cam_options, input_tensor, proxy_bank, scored_columns,
};
use super::{Cached, Job, Trained};
use crate::config::DatasetKind;
use crate::config::vocab::Word;
use crate::gallery::Gallery;
use crate::progress::bar;

/// Per-image part-level rows: `((source, proxy, stage), image id, values in
/// [`value_columns`](crate::report::benchmark::value_columns) order)`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct GroundTruth {
    /// One row per image × map source × proxy × stage.
    pub rows: Vec<super::evaluate::StoredRow>,
}

/// `n` of `all`, evenly spaced (all when `n ≥ all.len()`).
pub(super) fn thin(all: &[usize], n: usize) -> Vec<usize> {
    if n >= all.len() || n == 0 {
        return all.to_vec();
    }
    (0..n).map(|i| all[i * all.len() / n]).collect()
}

/// Score the maps of the first `benchmark.ground_truth_images` evaluation images on SynthCUB's
/// interventions (module docs).
pub fn ground_truth(job: &Job<'_>, trained: &Trained) -> Result<Cached<GroundTruth>> {
    let exp = job.exp;
    let d = &exp.file.dataset;
    ensure!(d.kind == DatasetKind::Synth, "benchmark.ground_truth needs dataset.kind = \"synth\"");
    let b = &exp.file.benchmark;
    let inputs = (
        &trained.stage.key,
        &exp.file.cam,
        &d.eval_transform,
        exp.file.eval.max_images,
        &exp.file.eval.baselines,
        b.ground_truth_images,
        embcam_cub::synth::interventions::INTERVENTIONS_VERSION,
        // 2: rows carry each part's mass and score drop; the per-intervention gallery.
        2,
    );
    let gt = job.cached("ground-truth", &inputs, "ground_truth.json", false, |stage| {
        let cfg = d.synth.clone().unwrap_or_default().config();
        let all = job.data.eval_images(exp.file.eval.max_images);
        let images = thin(&all, b.ground_truth_images);
        // Only the scored images' interventions are rendered (the folder grows on demand), under
        // the dataset's lock: another experiment may be rendering into the same dataset.
        let ids: Vec<u32> = images.iter().map(|&k| job.data.dataset.images[k].id).collect();
        let lock = crate::lock::acquire(&crate::lock::beside(&d.path), "SynthCUB interventions")?;
        let pb = bar("interventions");
        embcam_cub::synth::render_interventions(&d.path, &cfg, Some(&ids), &pb).with_context(
            || format!("rendering SynthCUB's interventions in {}", d.path.display()),
        )?;
        pb.finish_and_clear();
        drop(lock);
        let by_id: BTreeMap<u32, ImageInterventions> =
            embcam_cub::synth::read_interventions(&d.path)?
                .into_iter()
                .map(|iv| (iv.image_id, iv))
                .collect();
        let classes = embcam_cub::synth::make_classes(
            cfg.classes,
            cfg.difficulty.pair_differences,
            cfg.seed,
        )?;
        let pair_of: BTreeMap<u32, u32> = classes.iter().map(|c| (c.id, c.nearest)).collect();
        let (table, bank) = proxy_bank(job, &trained.net, &all)?;
        let run = GtRun { job, net: &trained.net, by_id: &by_id, pair_of: &pair_of };
        let stages = super::cam::stage_names(job, &trained.net)?;
        let pb = bar("ground truth");
        pb.set_length(images.len() as u64);
        let mut out = GroundTruth::default();
        let shown = GALLERY_IMAGES.min(exp.file.cam.gallery);
        let mut galleries: Vec<Gallery> = stages.iter().map(|_| Gallery::default()).collect();
        for (i, chunk) in images.chunks(exp.file.cam.batch_size).enumerate() {
            let batch = load_batch(&job.data.dataset, chunk, &job.resolved.transform, 0)?;
            run.batch(chunk, &batch, &table, &bank, &stages, &mut out)?;
            let first = i * exp.file.cam.batch_size;
            let own = (first < shown)
                .then(|| {
                    let specs: Vec<ProxySpec> =
                        job.resolved.proxies.iter().map(|(_, s)| *s).collect();
                    batch_proxies(&batch, &table, &bank, &specs)
                })
                .transpose()?;
            for b in (0..batch.len()).filter(|b| first + b < shown) {
                for (st, g) in stages.iter().zip(&mut galleries) {
                    run.gallery_rows(&batch, b, own.as_ref().context("proxies")?, st, g)?;
                }
            }
            pb.inc(chunk.len() as u64);
        }
        pb.finish_and_clear();
        for (st, g) in stages.iter().zip(&galleries) {
            g.write(&stage.dir, &format!("gallery-interventions-{st}"), GALLERY_TILE)?;
        }
        Ok(out)
    })?;
    Ok(gt)
}

/// What scoring one batch reads.
struct GtRun<'a> {
    job: &'a Job<'a>,
    net: &'a Net,
    by_id: &'a BTreeMap<u32, ImageInterventions>,
    pair_of: &'a BTreeMap<u32, u32>,
}

/// One image's target scores per proxy column: `(s(x), [(part, s(x without part))], s(background
/// swapped), s(bird removed))`.
struct Scores {
    original: f64,
    removed: Vec<(u32, f64)>,
    background: f64,
    no_bird: f64,
}

impl GtRun<'_> {
    fn batch(
        &self,
        chunk: &[usize],
        batch: &Batch,
        table: &embcam_cam::Embeddings,
        bank: &embcam_cam::ProxyBank,
        stages: &[String],
        out: &mut GroundTruth,
    ) -> Result<()> {
        let resolved = self.job.resolved;
        let specs: Vec<ProxySpec> = resolved.proxies.iter().map(|(_, s)| *s).collect();
        let own = batch_proxies(batch, table, bank, &specs)?;
        // The pair class's normalized-mean proxy; an image whose pair class has no proxy (not
        // among the explained classes) explains its own class there, and gets no contrast.
        let classes = bank.classes();
        let mut has_pair = Vec::with_capacity(batch.len());
        let pair_vectors: Vec<Vec<Vec<f32>>> = batch
            .labels
            .iter()
            .map(|c| {
                let pair = self.pair_of.get(c).copied().filter(|p| classes.contains(p));
                has_pair.push(pair.is_some());
                Ok(vec![bank.class_mean(pair.unwrap_or(*c), None)?.vector])
            })
            .collect::<Result<_>>()?;
        let pair = ProxyBatch::from_vectors(batch.ids.clone(), vec!["pair".into()], pair_vectors)?;
        let scores: Vec<Vec<Scores>> =
            (0..batch.len()).map(|b| self.scores(batch, b, &own)).collect::<Result<_>>()?;
        let labels: Vec<PartLabels> = batch
            .ids
            .iter()
            .map(|id| Ok(PartLabels::read(&self.interventions(*id)?.part_labels, *id)?))
            .collect::<Result<_>>()?;

        // Map baselines: the first proxy's score drops, the same map as the pair's (contrast 0).
        for (name, map) in &resolved.baselines {
            for (b, &k) in chunk.iter().enumerate() {
                let heat = map.heatmap(&self.job.data.truth(k)?);
                let key = (name.name().to_string(), "-".to_string(), "-".to_string());
                let row = self.row(batch, b, &labels[b], &scores[b][0], &heat, Some(&heat))?;
                out.rows.push((key, batch.ids[b], row));
            }
        }

        let x = input_tensor(batch, self.job.device);
        let names = cam_names(resolved);
        let cams = cam_methods(resolved);
        for st in stages {
            let opts = cam_options(resolved, st);
            let outs = embcam_cam::explain_many(self.net, x.clone(), &own, &cams, &opts, &Silent)?;
            let pair_outs: Vec<Option<CamOutput>> = {
                let driven: Vec<_> = cams.iter().copied().filter(|m| !m.is_target_free()).collect();
                let mut run =
                    embcam_cam::explain_many(self.net, x.clone(), &pair, &driven, &opts, &Silent)?
                        .into_iter();
                cams.iter().map(|m| (!m.is_target_free()).then(|| run.next()).flatten()).collect()
            };
            for ((name, out_m), pair_m) in names.iter().zip(&outs).zip(&pair_outs) {
                let columns = scored_columns(resolved, pair_m.is_none());
                for b in 0..batch.len() {
                    let g = &batch.geometries[b];
                    let heat = |o: &CamOutput, p: usize| Heatmap {
                        width: labels[b].width,
                        height: labels[b].height,
                        values: o.maps.to_original(b, p, g, 0.0),
                    };
                    for (p, proxy) in &columns {
                        let own_map = heat(out_m, *p);
                        let pair_map = match pair_m {
                            Some(o) if has_pair[b] => Some(heat(o, 0)),
                            Some(_) => None,
                            None => Some(own_map.clone()),
                        };
                        let s = &scores[b][*p];
                        let row = self.row(batch, b, &labels[b], s, &own_map, pair_map.as_ref())?;
                        out.rows.push((
                            (name.clone(), proxy.clone(), st.clone()),
                            batch.ids[b],
                            row,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn interventions(&self, id: u32) -> Result<&ImageInterventions> {
        self.by_id.get(&id).with_context(|| {
            format!("image id {id} has no interventions; remove the interventions folder and rerun")
        })
    }

    /// The part-level values of one map (module docs) in
    /// [`value_columns`](crate::report::benchmark::value_columns) order: [`PartMetric::ALL`], then
    /// each part's mass share, area share and score drop.
    fn row(
        &self,
        batch: &Batch,
        b: usize,
        labels: &PartLabels,
        s: &Scores,
        map: &Heatmap,
        pair_map: Option<&Heatmap>,
    ) -> Result<Vec<Option<f64>>> {
        let id = batch.ids[b];
        let iv = self.interventions(id)?;
        let drops: Vec<(u32, f64)> = s.removed.iter().map(|&(k, v)| (k, s.original - v)).collect();
        let scores = embcam_eval::score_parts(&PartInput {
            id,
            map,
            labels,
            discriminative_part: iv.discriminative_part,
            drops: &drops,
            pair_map,
            background: Some(BackgroundScores {
                original: s.original,
                background_swapped: s.background,
                bird_removed: s.no_bird,
            }),
        })?;
        let metrics = PartMetric::ALL.iter().map(|m| m.of(&scores)).collect();
        let masses = embcam_eval::part_masses(id, map, labels)?;
        Ok(crate::report::benchmark::row_values(metrics, &masses, &drops))
    }

    /// Image `b`'s target scores under every proxy column of `own`: on the original and on each
    /// render, loaded through the evaluation transform as the image itself.
    fn scores(&self, batch: &Batch, b: usize, own: &ProxyBatch) -> Result<Vec<Scores>> {
        let (id, class) = (batch.ids[b], batch.labels[b]);
        let iv = self.interventions(id)?;
        let t = &self.job.resolved.transform;
        let (h, w) = (batch.height as usize, batch.width as usize);
        let n = 3 * h * w;
        let mut pixels = batch.pixels[b * n..(b + 1) * n].to_vec();
        let renders = iv.removed.iter().map(|(_, p)| p).chain([&iv.background, &iv.no_bird]);
        for path in renders {
            pixels.extend(load_render(path, id, class, t, 0)?.chw);
        }
        let r = pixels.len() / n;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [r, 3, h, w]), self.job.device);
        let z = self.net.forward_raw(x); // [R, d]
        let dim = own.dim();
        (0..own.n_proxies())
            .map(|p| {
                let v = own.vector(b, p).to_vec();
                let pv: Vec<f32> = (0..r).flat_map(|_| v.iter().copied()).collect();
                let pt = Tensor::<2>::from_data(TensorData::new(pv, [r, dim]), self.job.device);
                let s: Vec<f64> = self
                    .job
                    .resolved
                    .target
                    .score(z.clone(), pt)
                    .try_into_vec_as::<f32>()
                    .map_err(|e| anyhow::anyhow!("reading target scores: {e}"))?
                    .into_iter()
                    .map(f64::from)
                    .collect();
                let k = iv.removed.len();
                Ok(Scores {
                    original: s[0],
                    removed: iv
                        .removed
                        .iter()
                        .map(|(part, _)| *part)
                        .zip(s[1..=k].iter().copied())
                        .collect(),
                    background: s[k + 1],
                    no_bird: s[k + 2],
                })
            })
            .collect()
    }
}
