//! The model randomisation views: `randomisation_metrics.csv` (one row per seed),
//! `randomisation.md` / `.csv` and `plots/randomisation.png`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use embcam_eval::sanity::RANDOMISATION_MAX_SPEARMAN;

use crate::pipeline::SanityRow;
use crate::plots;
use crate::store::write_atomic;
use crate::table;

/// One randomisation row of one cell and seed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SanityPoint {
    /// Grid cell label.
    pub cell: String,
    /// Seed.
    pub seed: u64,
    /// The stage's row.
    pub row: SanityRow,
}

/// Write `randomisation_metrics.csv`, `randomisation.md`, `randomisation.csv` and
/// `plots/randomisation.png` into `out`;
/// returns the markdown. Each row is the mean over seeds; with several seeds ± is the sd.
pub fn write_randomisation(out: &Path, points: &[SanityPoint]) -> Result<String> {
    // (cell, step order, step, layers, method, proxy, stage) → per-seed (ρ, SSIM, images)
    type Group = (String, usize, String, usize, String, String, String);
    let mut order: Vec<String> = Vec::new();
    for p in points {
        if !order.contains(&p.row.step) {
            order.push(p.row.step.clone());
        }
    }
    let mut groups: BTreeMap<Group, Vec<(f64, f64, usize)>> = BTreeMap::new();
    for p in points {
        let r = &p.row;
        let at = order.iter().position(|s| *s == r.step).unwrap_or(0);
        let g = (
            p.cell.clone(),
            at,
            r.step.clone(),
            r.layers,
            r.method.clone(),
            r.proxy.clone(),
            r.stage.clone(),
        );
        groups.entry(g).or_default().push((r.spearman, r.ssim, r.images));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for p in points {
        w.serialize(SanityRecord::from(p))?;
    }
    write_atomic(&out.join("randomisation_metrics.csv"), &w.into_inner()?)?;
    let has_cells = points.iter().any(|p| !p.cell.is_empty());
    let mut md = String::new();
    let columns = [
        "step",
        "layers randomised",
        "method",
        "proxy",
        "stage",
        "seeds",
        "images",
        "Spearman ρ",
        "SSIM",
        "passes (ρ < 0.5)",
    ];
    table::write_header(&mut md, has_cells, columns);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "cell",
        "step",
        "layers",
        "method",
        "proxy",
        "stage",
        "seeds",
        "images",
        "spearman_mean",
        "spearman_sd",
        "ssim_mean",
        "ssim_sd",
        "passes",
    ])?;
    let mut curves: BTreeMap<String, BTreeMap<String, Vec<(f64, f64)>>> = BTreeMap::new();
    for ((cell, _, step, layers, method, proxy, stage), v) in &groups {
        let rho_st = table::over_seeds(v.iter().map(|x| x.0)).unwrap_or_default();
        let ssim_st = table::over_seeds(v.iter().map(|x| x.1)).unwrap_or_default();
        let (rho, rho_sd, ssim, ssim_sd) =
            (rho_st.mean, rho_st.spread, ssim_st.mean, ssim_st.spread);
        let passes = rho < RANDOMISATION_MAX_SPEARMAN;
        let images = v.iter().map(|x| x.2).max().unwrap_or(0);
        let key = [
            step.clone(),
            layers.to_string(),
            method.clone(),
            proxy.clone(),
            stage.clone(),
            v.len().to_string(),
            images.to_string(),
        ];
        let pm = |m: f64, s: f64| {
            if v.len() > 1 { format!("{m:.3} ± {s:.3}") } else { format!("{m:.3}") }
        };
        let mut cells: Vec<String> = if has_cells { vec![cell.clone()] } else { vec![] };
        cells.extend(key.iter().cloned());
        cells.extend([
            pm(rho, rho_sd),
            pm(ssim, ssim_sd),
            if passes { "yes" } else { "no" }.into(),
        ]);
        let _ = writeln!(md, "| {} |", cells.join(" | "));
        let mut rec = vec![cell.clone()];
        rec.extend(key);
        rec.extend([
            format!("{rho:.6}"),
            format!("{rho_sd:.6}"),
            format!("{ssim:.6}"),
            format!("{ssim_sd:.6}"),
            passes.to_string(),
        ]);
        w.write_record(&rec)?;
        if step.starts_with("cascade:") {
            let series = format!("{} @ {stage}", table::source_label(method, proxy));
            curves
                .entry(cell.clone())
                .or_default()
                .entry(series)
                .or_default()
                .push((*layers as f64, rho));
        }
    }
    write_atomic(&out.join("randomisation.csv"), &w.into_inner()?)?;
    write_atomic(&out.join("randomisation.md"), md.as_bytes())?;
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir)?;
    let n = curves.len();
    for (i, (cell, series)) in curves.into_iter().enumerate() {
        let series: Vec<plots::Series> = series
            .into_iter()
            .map(|(label, mut pts)| {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (label, pts)
            })
            .collect();
        let suffix = if n > 1 { format!("-cell{}", i + 1) } else { String::new() };
        let title = if cell.is_empty() {
            "Cascading randomisation".to_string()
        } else {
            format!("Cascading randomisation ({cell})")
        };
        let file = dir.join(format!("randomisation{suffix}.png"));
        plots::lines(&file, &title, "layers randomised (from the head)", "Spearman ρ", &series)?;
    }
    Ok(md)
}

/// One row of `randomisation_metrics.csv`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SanityRecord {
    cell: String,
    seed: u64,
    step: String,
    layers: usize,
    method: String,
    proxy: String,
    stage: String,
    images: usize,
    spearman: f64,
    ssim: f64,
}

impl From<&SanityPoint> for SanityRecord {
    fn from(p: &SanityPoint) -> Self {
        let r = p.row.clone();
        SanityRecord {
            cell: p.cell.clone(),
            seed: p.seed,
            step: r.step,
            layers: r.layers,
            method: r.method,
            proxy: r.proxy,
            stage: r.stage,
            images: r.images,
            spearman: r.spearman,
            ssim: r.ssim,
        }
    }
}

impl From<SanityRecord> for SanityPoint {
    fn from(r: SanityRecord) -> Self {
        SanityPoint {
            cell: r.cell,
            seed: r.seed,
            row: SanityRow {
                step: r.step,
                layers: r.layers,
                method: r.method,
                proxy: r.proxy,
                stage: r.stage,
                spearman: r.spearman,
                ssim: r.ssim,
                images: r.images,
            },
        }
    }
}
