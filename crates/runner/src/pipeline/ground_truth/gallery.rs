//! The ground-truth stage's per-intervention gallery: for the first [`GALLERY_IMAGES`] scored
//! images, one row per intervention with each method's map computed on the render and the changed
//! region outlined.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::{Tensor, TensorData};
use embcam_cam::ProxyBatch;
use embcam_cub::load::Batch;
use embcam_cub::synth::{PartLabels, load_render};
use embcam_cub::{Mask, Silent};

use super::GtRun;
use crate::gallery::Gallery;
use crate::pipeline::cam::{cam_methods, cam_names, cam_options, scored_columns};

/// Scored images shown in the per-intervention gallery (at most `cam.gallery`).
pub(super) const GALLERY_IMAGES: usize = 2;
/// The per-intervention gallery's tile size, pixels.
pub(super) const GALLERY_TILE: u32 = 96;

impl GtRun<'_> {
    /// Image `b`'s gallery rows at stage `st`: one per intervention, each method's map for the
    /// first proxy column (the gallery stays small) computed on the render, over it, with the
    /// changed region outlined.
    pub(super) fn gallery_rows(
        &self,
        batch: &Batch,
        b: usize,
        own: &ProxyBatch,
        st: &str,
        gallery: &mut Gallery,
    ) -> Result<()> {
        let (id, class) = (batch.ids[b], batch.labels[b]);
        let iv = self.interventions(id)?;
        let labels = PartLabels::read(&iv.part_labels, id)?;
        let cf_labels = PartLabels::read(&iv.counterfactual_part_labels, id)?;
        let bird = |l: &PartLabels| l.labels.iter().map(|&v| v != 0).collect::<Vec<_>>();
        let rec = self.job.data.dataset.image(id).context("a known image")?;
        let original = self.job.data.dataset.image_path(rec);
        // (row label, render, outlined region)
        let mut rows: Vec<(String, PathBuf, Vec<bool>)> =
            vec![("original".into(), original, bird(&labels))];
        for (part, path) in &iv.removed {
            let name = (*part as usize).checked_sub(1).and_then(|k| embcam_cub::PART_NAMES.get(k));
            let name = name.copied().unwrap_or("part");
            rows.push((format!("no {name}"), path.clone(), labels.mask(*part)));
        }
        rows.push((
            "counterfactual".into(),
            iv.counterfactual.clone(),
            cf_labels.mask(iv.discriminative_part),
        ));
        rows.push(("background swapped".into(), iv.background.clone(), bird(&labels)));
        rows.push(("bird removed".into(), iv.no_bird.clone(), bird(&labels)));

        let t = &self.job.resolved.transform;
        let (mut pixels, mut geometries, mut images) = (Vec::new(), Vec::new(), Vec::new());
        for (_, path, _) in &rows {
            let loaded = load_render(path, id, class, t, 0)?;
            pixels.extend(loaded.chw);
            geometries.push(loaded.geometry);
            images.push(embcam_cub::load::decode_rgb(path, id)?);
        }
        let r = rows.len();
        let (h, w) = (batch.height as usize, batch.width as usize);
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [r, 3, h, w]), self.job.device);
        let vectors: Vec<Vec<Vec<f32>>> = (0..r)
            .map(|_| (0..own.n_proxies()).map(|p| own.vector(b, p).to_vec()).collect())
            .collect();
        let proxies = ProxyBatch::from_vectors(vec![id; r], own.columns().to_vec(), vectors)?;
        let resolved = self.job.resolved;
        let opts = cam_options(resolved, st);
        let cams = cam_methods(resolved);
        let outs = embcam_cam::explain_many(self.net, x, &proxies, &cams, &opts, &Silent)?;
        let style = embcam_cam::OverlayStyle::default();
        let first = gallery.rows();
        for (k, ((label, _, region), img)) in rows.iter().zip(&images).enumerate() {
            let mask = Mask {
                width: img.width(),
                height: img.height(),
                soft: region.iter().map(|&inside| if inside { 255 } else { 0 }).collect(),
            };
            gallery.label_row(first + k, &format!("{id}: {label}"));
            for ((name, out), m) in cam_names(resolved).iter().zip(&outs).zip(&cams) {
                for (p, proxy) in scored_columns(resolved, m.is_target_free()).into_iter().take(1) {
                    let map = out.maps.to_original(k, p, &geometries[k], 0.0);
                    let tile = embcam_cam::overlay(img, &map, None, Some(&mask), &style)?;
                    gallery.push(first + k, id, name, &proxy, tile);
                }
            }
        }
        Ok(())
    }
}
