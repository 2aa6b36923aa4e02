//! The explain stage: every method × proxy × stage on the trained (and, as a baseline, the
//! untrained) network; the raw maps (`.npy` + CSV index), the embeddings the proxies came from,
//! and a labelled gallery.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use embcam_cam::{CamOutput, ChenWeights, Embeddings, HeatmapWriter, ProxyBank, ProxySpec};
use embcam_cub::Silent;
use embcam_cub::load::{Batch, load_batch};
use embcam_eval::ImageTruth;
use embcam_model::Net;
use serde::{Deserialize, Serialize};

use super::cam::{
    batch_proxies, cam_methods, cam_options, embed_images, input_tensor, proxy_bank, stage_names,
};
use super::train::untrained;
use super::{Cached, Job, Trained};
use crate::config::vocab::Word;
use crate::config::{Explainer, Resolved};
use crate::progress::bar;
use crate::store::{Stage, write_atomic};

/// The maps of one method at one stage of one network, as the explain stage stored them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeatmapSet {
    /// Name in tables (`embeddingcam`, `gradcam++`, `embeddingcam (untrained)`).
    pub source: String,
    /// The stage.
    pub stage: String,
    /// The proxy columns, in the order of each image's maps.
    pub columns: Vec<String>,
    /// A target-free method (Eigen-CAM, Chen et al.): every column holds the same map, scored
    /// once as `-`.
    pub target_free: bool,
    /// Whether the maps come from the trained network (faithfulness is measured on it only).
    pub trained: bool,
    /// The `.npy` file in the stage folder: raw (pre-ReLU) maps, `(images × columns, h, w)`, with
    /// a CSV index of the same name.
    pub file: String,
}

/// What the explain stage leaves besides the heatmap files.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Explained {
    /// The explained images' ids, in the order of the maps.
    pub images: Vec<u32>,
    /// The heatmap files.
    pub sets: Vec<HeatmapSet>,
    /// The trained network's unit class proxies (normalized mean over the proxy set), which the
    /// faithfulness curves measure against: `(class id, vector)`.
    pub class_proxies: Vec<(u32, Vec<f32>)>,
    /// Warnings from the CAM crate.
    pub warnings: Vec<String>,
    /// Retrieval quality on the explained inputs themselves (the evaluation transform the maps
    /// see, which may differ from training's validation transform), per network.
    #[serde(default)]
    pub retrieval: Vec<InputRetrieval>,
}

/// Recall@1 and MAP@R of one network's embeddings of the explained images, every image querying
/// all the others (the metric-learning protocol of training's validation, on other inputs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputRetrieval {
    /// `embeddingcam`'s network: `trained` or `untrained`.
    pub network: String,
    /// Recall@1.
    pub recall_at_1: f64,
    /// MAP@R.
    pub map_at_r: f64,
}

/// Explain the evaluation images with every method × proxy × stage on the trained (and, as a
/// baseline, the untrained) network; write the raw maps (`.npy` + CSV index) and a gallery.
pub fn explain(job: &Job<'_>, trained: &Trained) -> Result<Cached<Explained>> {
    let exp = job.exp;
    let inputs = (
        &trained.stage.key,
        &exp.file.cam,
        &exp.file.dataset.eval_transform,
        exp.file.eval.max_images,
        job.resolved.untrained,
        exp.seed,
    );
    job.cached("explain", &inputs, "explained.json", false, |stage| {
        let images = job.data.eval_images(exp.file.eval.max_images);
        let mut explained = Explained {
            images: images.iter().map(|&k| job.data.dataset.images[k].id).collect(),
            ..Explained::default()
        };
        let untrained_net = job.resolved.untrained.then(|| untrained(job)).transpose()?;
        let mut nets: Vec<(&Net, &str)> = vec![(&trained.net, "")];
        if let Some(n) = &untrained_net {
            nets.push((n, crate::table::UNTRAINED));
        }
        // Every method also runs on the untrained network: each is compared with its own baseline.
        for (net, suffix) in nets {
            let run = NetRun { job, stage, images: &images, net, suffix };
            run.explain(&mut explained)?;
        }
        Ok(explained)
    })
}

/// One network's part of the explain stage.
struct NetRun<'a> {
    job: &'a Job<'a>,
    stage: &'a Stage,
    /// The evaluation images (dataset indices).
    images: &'a [usize],
    net: &'a Net,
    /// `""` for the trained network, [`crate::table::UNTRAINED`] for its baseline.
    suffix: &'a str,
}

impl NetRun<'_> {
    fn resolved(&self) -> &Resolved {
        self.job.resolved
    }

    /// `z` of `images` under the evaluation transform.
    fn embed(&self, images: &[usize]) -> Result<Embeddings> {
        embed_images(self.job, self.net, images)
    }

    /// Explain every evaluation image at every stage with every method; the maps, the embeddings
    /// and (for the trained network) the gallery and the class proxies go into `explained`.
    fn explain(&self, explained: &mut Explained) -> Result<()> {
        let (table, bank) = proxy_bank(self.job, self.net, self.images)?;
        write_embeddings(self.stage, &format!("embeddings{}", self.file_suffix()), &table)?;
        explained.retrieval.push(self.retrieval(&table)?);
        if self.suffix.is_empty() {
            for class in bank.classes() {
                explained.class_proxies.push((class, bank.class_mean(class, None)?.vector));
            }
        }
        let stages = stage_names(self.job, self.net)?;
        let originals = self.originals()?;
        let pb = bar(if self.suffix.is_empty() { "explaining" } else { "untrained" });
        pb.set_length((self.images.len() * stages.len()) as u64);
        for st in &stages {
            self.explain_stage(st, &table, &bank, &originals, explained, &|n| pb.inc(n))?;
        }
        pb.finish_and_clear();
        Ok(())
    }

    /// Recall@1 and MAP@R of the explained images' embeddings `table`.
    fn retrieval(&self, table: &Embeddings) -> Result<InputRetrieval> {
        let s = embcam_eval::retrieval_scores(table.data(), table.dim(), table.labels(), &[1])?;
        let network = if self.suffix.is_empty() { "trained" } else { "untrained" };
        Ok(InputRetrieval {
            network: network.into(),
            recall_at_1: s.recall_at.first().map_or(0.0, |&(_, r)| r),
            map_at_r: s.map_at_r,
        })
    }

    /// `""`, or `_(untrained)`: the file names' suffix.
    fn file_suffix(&self) -> String {
        self.suffix.replace(' ', "_")
    }

    /// The gallery's images: the first `cam.gallery` of the trained network (none of the
    /// untrained one), with their ground truth.
    fn originals(&self) -> Result<Vec<(ImageTruth, image::RgbImage)>> {
        let data = self.job.data;
        let n = if self.suffix.is_empty() { self.job.exp.file.cam.gallery } else { 0 };
        self.images[..n.min(self.images.len())]
            .iter()
            .map(|&k| {
                let t = data.truth(k)?;
                let rec = data.dataset.image(t.id).context("known image")?;
                let img = embcam_cub::load::decode_rgb(&data.dataset.image_path(rec), t.id)?;
                Ok((t, img))
            })
            .collect()
    }

    /// One stage: every method's maps of every image into `<method>[suffix]-<stage>.npy`, a
    /// gallery of the first images, and the sets and warnings into `explained`.
    fn explain_stage(
        &self,
        st: &str,
        table: &Embeddings,
        bank: &ProxyBank,
        originals: &[(ImageTruth, image::RgbImage)],
        explained: &mut Explained,
        progress: &dyn Fn(u64),
    ) -> Result<()> {
        let (c, data) = (&self.job.exp.file.cam, self.job.data);
        let methods = &self.resolved().methods;
        embcam_cam::check_stage(self.net, st)?;
        let chen = self.fit_chen(st)?;
        let names: Vec<String> = methods
            .iter()
            .map(|(m, _)| format!("{}{}-{st}", m.name(), self.file_suffix()))
            .collect();
        let mut writers: Vec<HeatmapWriter> = names
            .iter()
            .map(|name| HeatmapWriter::create(&self.stage.dir, name))
            .collect::<Result<_, _>>()?;
        let mut columns: Vec<Vec<String>> = vec![Vec::new(); methods.len()];
        let mut gallery = crate::gallery::Gallery::default();
        for (chunk_i, chunk) in self.images.chunks(c.batch_size).enumerate() {
            let batch = load_batch(&data.dataset, chunk, &self.resolved().transform, 0)?;
            let outs = self.maps(st, &batch, table, bank, chen.as_ref())?;
            for (i, ((name, e), out)) in methods.iter().zip(&outs).enumerate() {
                writers[i].append(&out.maps)?;
                columns[i].clone_from(&out.maps.columns);
                for w in &out.warnings {
                    let msg = format!("{name}{}: {w}", self.suffix);
                    if !explained.warnings.contains(&msg) {
                        explained.warnings.push(msg);
                    }
                }
                // The gallery rows of this batch: every proxy column (one for target-free maps).
                for b in 0..batch.len() {
                    let row = chunk_i * c.batch_size + b;
                    let Some((t, img)) = originals.get(row) else { continue };
                    let shown = if e.is_target_free() { 1 } else { c.proxies.len() };
                    for p in 0..shown {
                        let map = out.maps.to_original(b, p, &batch.geometries[b], 0.0);
                        let style = embcam_cam::OverlayStyle::default();
                        let tile =
                            embcam_cam::overlay(img, &map, Some(&t.bbox), t.mask.as_ref(), &style)?;
                        let column = if e.is_target_free() { "-" } else { c.proxies[p].name() };
                        gallery.push(row, t.id, name.name(), column, tile);
                    }
                }
            }
            progress(batch.len() as u64);
        }
        for w in writers {
            w.finish()?;
        }
        for (((m, e), name), cols) in methods.iter().zip(names).zip(columns) {
            explained.sets.push(HeatmapSet {
                source: format!("{m}{}", self.suffix),
                stage: st.to_string(),
                columns: match e {
                    Explainer::Cam(_) => c.proxies.iter().map(|p| p.to_string()).collect(),
                    Explainer::Chen { .. } => cols,
                },
                target_free: e.is_target_free(),
                trained: self.suffix.is_empty(),
                file: format!("{name}.npy"),
            });
        }
        gallery.write(&self.stage.dir, &format!("gallery-{st}"), 160)
    }

    /// Every method's maps of one batch at stage `st`, in the order of `cam.methods`: the CAM
    /// methods in one pass over the proxies' target, Chen et al. from its fitted weights.
    fn maps(
        &self,
        st: &str,
        batch: &Batch,
        table: &Embeddings,
        bank: &ProxyBank,
        chen: Option<&ChenWeights>,
    ) -> Result<Vec<CamOutput>> {
        let resolved = self.resolved();
        let x = input_tensor(batch, self.job.device);
        let specs: Vec<ProxySpec> = resolved.proxies.iter().map(|(_, s)| *s).collect();
        let proxies = batch_proxies(batch, table, bank, &specs)?;
        let opts = cam_options(resolved, st);
        let cams = cam_methods(resolved);
        let mut cam_outs =
            embcam_cam::explain_many(self.net, x.clone(), &proxies, &cams, &opts, &Silent)?
                .into_iter();
        resolved
            .methods
            .iter()
            .map(|(_, e)| match (e, chen) {
                (Explainer::Cam(_), _) => cam_outs.next().context("one output per method"),
                (Explainer::Chen { .. }, Some(w)) => {
                    Ok(w.explain(self.net, x.clone(), &batch.ids, &Silent)?)
                }
                (Explainer::Chen { .. }, None) => bail!("Chen et al.'s weights are missing"),
            })
            .collect()
    }

    /// Chen et al.'s weights at stage `st`, fitted on the training split (when listed).
    fn fit_chen(&self, st: &str) -> Result<Option<ChenWeights>> {
        let Some((config, centres)) = self.resolved().methods.iter().find_map(|(_, e)| match e {
            Explainer::Chen { config, centres } => Some((config, *centres)),
            Explainer::Cam(_) => None,
        }) else {
            return Ok(None);
        };
        let data = self.job.data;
        let train = &data.split.train;
        let table = self.embed(train)?;
        let transform = self.resolved().transform;
        let batches = train.chunks(32).map(|chunk| {
            let batch = load_batch(&data.dataset, chunk, &transform, 0)
                .map_err(|e| embcam_cam::CamError::Model(e.into()))?;
            Ok((input_tensor(&batch, self.job.device), batch.ids))
        });
        let weights = ChenWeights::fit(self.net, st, &table, batches, config, &Silent)
            .with_context(|| format!("fitting Chen et al.'s weights at {st}"))?;
        Ok(Some(match centres {
            Some(n) => weights.kmeans(n.min(weights.len()), 20, config.seed)?,
            None => weights,
        }))
    }
}

/// The embeddings the proxies were built from: `<name>.npy` (`images × d`, `z` before L2
/// normalisation, f32) and `<name>.csv` (`row,image_id,class_id`).
fn write_embeddings(stage: &Stage, name: &str, table: &Embeddings) -> Result<()> {
    embcam_cam::write_npy(
        &stage.file(&format!("{name}.npy")),
        &[table.len(), table.dim()],
        table.data(),
    )?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["row", "image_id", "class_id"])?;
    for (i, (id, label)) in table.ids().iter().zip(table.labels()).enumerate() {
        w.serialize((i, id, label))?;
    }
    write_atomic(&stage.file(&format!("{name}.csv")), &w.into_inner()?)
}

/// The gallery images of an explain stage.
pub fn galleries(stage: &Stage) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(&stage.dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("gallery-"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
