//! The evaluate stage: score every stored heatmap and every baseline (per-image rows,
//! split-level metrics, τ curves) and, when asked, the deletion/insertion curves on the trained
//! network.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Tensor, TensorData};
use embcam_cub::load::{Batch, load_batch};
use embcam_cub::{Geometry, resize_bilinear};
use embcam_eval::{
    ClassProxies, EvalConfig, FaithfulnessConfig, FaithfulnessInput, FaithfulnessScores, Heatmap,
    ImageScores, ImageTruth, Metric,
};
use embcam_model::Net;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::explain::{Explained, HeatmapSet};
use super::{Cached, Job, Trained};
use crate::config::Experiment;
use crate::config::vocab::Word;
use crate::progress::bar;
use crate::store::Stage;
use crate::table::{Key, Row, SplitRow};

/// What the scoring stage keeps.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Scored {
    /// Per-image rows.
    pub rows: Vec<StoredRow>,
    /// Split-level rows.
    pub split: Vec<StoredSplit>,
    /// `(τ, localisation accuracy)` per group.
    pub tau_curves: Vec<(StoredKey, Vec<(f32, f64)>)>,
    /// Mean deletion and insertion curves per group (when faithfulness is measured):
    /// `(fraction of pixels, deletion similarity, insertion similarity)`.
    #[serde(default)]
    pub faith_curves: Vec<(StoredKey, Vec<FaithPoint>)>,
    /// Warnings from the CAM crate, for the run summary.
    pub warnings: Vec<String>,
}

/// [`Key`] in a serialisable form.
pub type StoredKey = (String, String, String);
/// A per-image row: (source, proxy, stage), image id, values.
pub type StoredRow = (StoredKey, u32, Vec<Option<f64>>);
/// A point of the mean faithfulness curves: (fraction of pixels, deletion similarity, insertion
/// similarity).
pub type FaithPoint = (f64, f64, f64);
/// A split-level row: key, MaxBoxAccV2, PxAP.
pub type StoredSplit = (StoredKey, Option<f64>, Option<f64>);

impl Scored {
    /// The rows with this experiment's cell and seed.
    pub fn rows(&self, exp: &Experiment) -> (Vec<Row>, Vec<SplitRow>) {
        let key = |k: &StoredKey| stored_key(exp, k);
        let rows = self
            .rows
            .iter()
            .map(|(k, id, v)| {
                let mut values = [None; Metric::PER_IMAGE.len()];
                for (slot, x) in values.iter_mut().zip(v) {
                    *slot = *x;
                }
                Row { key: key(k), seed: exp.seed, image_id: *id, values }
            })
            .collect();
        let split = self
            .split
            .iter()
            .map(|(k, a, b)| SplitRow { key: key(k), seed: exp.seed, values: [*a, *b] })
            .collect();
        (rows, split)
    }
}

/// A stored key with this experiment's cell.
pub fn stored_key(exp: &Experiment, k: &StoredKey) -> Key {
    Key { cell: exp.cell.clone(), source: k.0.clone(), proxy: k.1.clone(), stage: k.2.clone() }
}

/// Score every stored heatmap and every baseline: per-image rows, split-level metrics, τ curves,
/// and (when asked) deletion/insertion curves on the trained network.
pub fn evaluate(
    job: &Job<'_>,
    trained: &Trained,
    explain: &Cached<Explained>,
) -> Result<Cached<Scored>> {
    let (exp, data) = (job.exp, job.data);
    let inputs = (&explain.stage.key, &exp.file.eval);
    job.cached("evaluate", &inputs, "scored.json", false, |_| {
        let cfg = &job.resolved.eval;
        let images = data.eval_images(exp.file.eval.max_images);
        let ids: Vec<u32> = images.iter().map(|&k| data.dataset.images[k].id).collect();
        ensure!(
            ids == explain.value.images,
            "{} explained other images than this evaluation asks for; rerun with --force",
            explain.stage.dir.display()
        );
        let truths: Vec<ImageTruth> =
            images.iter().map(|&k| data.truth(k)).collect::<Result<_>>()?;
        let transform = job.resolved.transform;
        let geometries: Vec<Geometry> =
            truths.iter().map(|t| transform.geometry(t.width, t.height, t.id, 0)).collect();
        let mut groups = Groups::default();

        // Baselines that need no network.
        for (name, map) in &job.resolved.baselines {
            let maps: Vec<Heatmap> = truths.iter().map(|t| map.heatmap(t)).collect();
            for s in embcam_eval::score_all(maps.iter().zip(&truths).collect::<Vec<_>>(), cfg)? {
                groups.add((name.name().into(), "-".into(), "-".into()), s, None);
            }
        }

        let faithfulness = exp.file.eval.faithfulness.then(|| Faithfulness {
            proxies: ClassProxies::new(&explain.value.class_proxies),
            cfg: FaithfulnessConfig {
                steps: exp.file.eval.faithfulness_steps.max(1),
                ..Default::default()
            },
            net: &trained.net,
            job,
        });
        let pb = bar("scoring");
        let sets = &explain.value.sets;
        let columns: usize =
            sets.iter().map(|s| if s.target_free { 1 } else { s.columns.len() }).sum();
        pb.set_length((columns * images.len()) as u64);
        let scoring = Scoring { job, images: &images, truths: &truths, geometries: &geometries };
        for set in sets {
            let faith = faithfulness.as_ref().filter(|_| set.trained);
            scoring.set(&explain.stage, set, faith, &mut groups, &|n| pb.inc(n))?;
        }
        pb.finish_and_clear();
        let mut scored = Scored { warnings: explain.value.warnings.clone(), ..Scored::default() };
        groups.finish(cfg, &mut scored)?;
        Ok(scored)
    })
}

/// What scoring one heatmap set reads.
struct Scoring<'a> {
    job: &'a Job<'a>,
    images: &'a [usize],
    truths: &'a [ImageTruth],
    geometries: &'a [Geometry],
}

impl Scoring<'_> {
    /// Score the maps of `set` (and their faithfulness curves with `faith`) into `groups`.
    fn set(
        &self,
        explain: &Stage,
        set: &HeatmapSet,
        faith: Option<&Faithfulness<'_>>,
        groups: &mut Groups,
        progress: &dyn Fn(u64),
    ) -> Result<()> {
        let cfg = &self.job.resolved.eval;
        let path = explain.dir.join(&set.file);
        let (shape, raw) = embcam_cam::read_npy(&path)?;
        let n = self.images.len();
        let (h, w) = match shape[..] {
            [rows, h, w] if rows == n * set.columns.len() => (h, w),
            _ => bail!(
                "{}: shape {shape:?} does not hold {n} images × {} proxies; rerun with --force",
                path.display(),
                set.columns.len()
            ),
        };
        let map_of = |i: usize, p: usize| -> Vec<f32> {
            let at = (i * set.columns.len() + p) * h * w;
            raw[at..at + h * w].iter().map(|&v| v.max(0.0)).collect()
        };
        let shown: Vec<(usize, &str)> = if set.target_free {
            vec![(0, "-")]
        } else {
            set.columns.iter().map(String::as_str).enumerate().collect()
        };
        for (p, proxy) in shown {
            let key = (set.source.clone(), proxy.to_string(), set.stage.clone());
            // In chunks, so that memory holds one chunk of full-resolution maps at a time.
            for (c, chunk) in self.images.chunks(64).enumerate() {
                let range = c * 64..c * 64 + chunk.len();
                let maps: Vec<Heatmap> = range
                    .clone()
                    .into_par_iter()
                    .map(|i| Heatmap {
                        width: self.truths[i].width,
                        height: self.truths[i].height,
                        values: self.geometries[i].map_to_original(
                            &map_of(i, p),
                            w as u32,
                            h as u32,
                            0.0,
                        ),
                    })
                    .collect();
                let scores = embcam_eval::score_all(
                    maps.iter().zip(&self.truths[range.clone()]).collect::<Vec<_>>(),
                    cfg,
                )?;
                let curves: Vec<Option<FaithfulnessScores>> = match faith {
                    None => vec![None; chunk.len()],
                    Some(f) => {
                        let data = &self.job.data.dataset;
                        let batch = load_batch(data, chunk, &self.job.resolved.transform, 0)?;
                        (0..batch.len())
                            .map(|b| {
                                let heat = resize_bilinear(
                                    &map_of(range.start + b, p),
                                    w as u32,
                                    h as u32,
                                    batch.width,
                                    batch.height,
                                );
                                f.curves(&batch, b, &heat).map(Some)
                            })
                            .collect::<Result<_>>()?
                    }
                };
                for (s, f) in scores.into_iter().zip(curves) {
                    groups.add(key.clone(), s, f);
                }
                progress(chunk.len() as u64);
            }
        }
        Ok(())
    }
}

/// Accumulates per-image scores (and deletion/insertion results, when measured) by group, then
/// summarises each group.
#[derive(Default)]
struct Groups {
    scores: BTreeMap<StoredKey, Vec<ImageScores>>,
    faith: BTreeMap<StoredKey, Vec<Option<FaithfulnessScores>>>,
}

impl Groups {
    fn add(&mut self, key: StoredKey, s: ImageScores, faith: Option<FaithfulnessScores>) {
        self.scores.entry(key.clone()).or_default().push(s);
        self.faith.entry(key).or_default().push(faith);
    }

    fn finish(self, cfg: &EvalConfig, out: &mut Scored) -> Result<()> {
        for (key, scores) in self.scores {
            let report = embcam_eval::summarize(&key.0, &scores, cfg)?;
            let [maxboxacc, pxap] = Metric::SPLIT.map(|m| m.of_split(&report));
            out.split.push((key.clone(), maxboxacc, pxap));
            out.tau_curves.push((key.clone(), report.loc_acc_curve.clone()));
            let faith = &self.faith[&key];
            out.rows.extend(scores.iter().zip(faith).map(|(s, f)| {
                let values = Metric::PER_IMAGE.iter().map(|m| m.of_image(s, f.as_ref())).collect();
                (key.clone(), s.id, values)
            }));
            let measured: Vec<&FaithfulnessScores> = faith.iter().flatten().collect();
            if !measured.is_empty() {
                out.faith_curves.push((key.clone(), embcam_eval::mean_curves(&measured)));
            }
        }
        Ok(())
    }
}

/// Deletion and insertion curves in embedding space (RISE, Petsiuk et al. 2018) on a network:
/// pixels removed (or revealed) in heatmap order, tracking `y(x')·p_c` against the true class's
/// normalized-mean proxy.
struct Faithfulness<'a> {
    proxies: ClassProxies,
    cfg: FaithfulnessConfig,
    net: &'a Net,
    job: &'a Job<'a>,
}

impl Faithfulness<'_> {
    /// The deletion and insertion curves of image `b` of `batch` under heatmap `heat` (at the
    /// input's resolution).
    fn curves(&self, batch: &Batch, b: usize, heat: &[f32]) -> Result<FaithfulnessScores> {
        let (h, w) = (batch.height as usize, batch.width as usize);
        let n = 3 * h * w;
        let dim = self.proxies.dim;
        let input = FaithfulnessInput {
            id: batch.ids[b],
            image: &batch.pixels[b * n..(b + 1) * n],
            channels: 3,
            height: h,
            width: w,
            heatmap: heat,
            proxies: &self.proxies.proxies,
            dim,
            class: self.proxies.row(batch.labels[b]).context("the image's class has a proxy")?,
        };
        let embed = |images: &[Vec<f32>]| -> Result<Vec<Vec<f32>>, embcam_model::ModelError> {
            let flat: Vec<f32> = images.iter().flatten().copied().collect();
            let x = Tensor::<4>::from_data(
                TensorData::new(flat, [images.len(), 3, h, w]),
                self.job.device,
            );
            let y = self
                .net
                .forward(x)
                .try_into_vec_as::<f32>()
                .map_err(|e| embcam_model::ModelError::TensorRead(e.to_string()))?;
            Ok(y.chunks(dim).map(<[f32]>::to_vec).collect())
        };
        Ok(embcam_eval::deletion_insertion(&input, &self.cfg, embed)?)
    }
}
