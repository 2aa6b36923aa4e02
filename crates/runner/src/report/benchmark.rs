//! The benchmark's views (`[benchmark]`): the part-level ground-truth table and the model
//! randomisation table, each as markdown and CSV, plus the per-image ground-truth rows and the
//! randomisation curve.
//!
//! | file | what |
//! |---|---|
//! | `ground_truth_metrics.csv` | `cell,source,proxy,stage,seed,image_id,` then [`PartMetric::ALL`] |
//! | `ground_truth.md` / `.csv` | per map source: mean over images, ± as `summary.md` |
//! | `randomisation.md` / `.csv` | per step × method × proxy × stage: mean ρ and SSIM, passes |
//! | `plots/randomisation.png` | mean ρ against the layers randomised, cascading steps |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use embcam_eval::sanity::RANDOMISATION_MAX_SPEARMAN;
use embcam_eval::{PartMetric, Summary};

use crate::pipeline::SanityRow;
use crate::plots;
use crate::store::write_atomic;
use crate::table::{self, Key, Stat};

/// One image's part-level values for one map source.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GtRow {
    /// Group keys.
    pub key: Key,
    /// Seed.
    pub seed: u64,
    /// Image id.
    pub image_id: u32,
    /// In [`PartMetric::ALL`] order.
    pub values: Vec<Option<f64>>,
}

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

/// A metric over seeds from per-seed values `(mean, image CI, n)`: the mean ± sd over seeds
/// ([`table::over_seeds`]; for one seed the spread is its image CI), images summed, the mean image
/// CI.
fn over_seeds(per_seed: &[(f64, f64, usize)]) -> Option<Stat> {
    let mut st = table::over_seeds(per_seed.iter().map(|s| s.0))?;
    st.image_ci = per_seed.iter().map(|s| s.1).sum::<f64>() / per_seed.len() as f64;
    if per_seed.len() == 1 {
        st.spread = st.image_ci;
    }
    st.n = per_seed.iter().map(|s| s.2).sum();
    Some(st)
}

/// Write `ground_truth_metrics.csv`, `ground_truth.md` and `ground_truth.csv` into `out`;
/// returns the markdown. Map baselines (named in `baselines`) sort last.
pub fn write_ground_truth(out: &Path, rows: &[GtRow], baselines: &[String]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head: Vec<String> = ["cell", "source", "proxy", "stage", "seed", "image_id"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    head.extend(PartMetric::ALL.iter().map(|m| m.name().to_string()));
    w.write_record(&head)?;
    for r in rows {
        let mut rec = vec![
            r.key.cell.clone(),
            r.key.source.clone(),
            r.key.proxy.clone(),
            r.key.stage.clone(),
            r.seed.to_string(),
            r.image_id.to_string(),
        ];
        rec.extend(r.values.iter().map(|v| v.map(|x| x.to_string()).unwrap_or_default()));
        w.write_record(&rec)?;
    }
    write_atomic(&out.join("ground_truth_metrics.csv"), &w.into_inner()?)?;

    // key → seed → rows
    let mut groups: BTreeMap<(bool, Key), BTreeMap<u64, Vec<&GtRow>>> = BTreeMap::new();
    for r in rows {
        let baseline = baselines.contains(&r.key.source);
        groups.entry((baseline, r.key.clone())).or_default().entry(r.seed).or_default().push(r);
    }
    let has_cells = rows.iter().any(|r| !r.key.cell.is_empty());
    let mut md = String::new();
    let mut head = vec![];
    if has_cells {
        head.push("cell");
    }
    head.extend(["method", "proxy", "stage", "seeds", "images"]);
    head.extend(PartMetric::ALL.iter().map(|m| m.label()));
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut chead: Vec<String> = ["cell", "method", "proxy", "stage", "seeds", "images"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in PartMetric::ALL {
        let n = m.name();
        chead.extend([format!("{n}_mean"), format!("{n}_spread"), format!("{n}_n")]);
        chead.push(format!("{n}_image_ci"));
    }
    w.write_record(&chead)?;
    for ((_, key), seeds) in &groups {
        let images = seeds.values().map(Vec::len).max().unwrap_or(0);
        let stats: Vec<Option<Stat>> = (0..PartMetric::ALL.len())
            .map(|i| {
                let per_seed: Vec<(f64, f64, usize)> = seeds
                    .values()
                    .filter_map(|rs| {
                        let v: Vec<f64> = rs.iter().filter_map(|r| r.values[i]).collect();
                        Summary::of(&v).map(|s| (s.mean, s.ci95.unwrap_or(0.0), s.n))
                    })
                    .collect();
                over_seeds(&per_seed)
            })
            .collect();
        let mut cells = vec![];
        if has_cells {
            cells.push(key.cell.clone());
        }
        cells.extend([key.source.clone(), key.proxy.clone(), key.stage.clone()]);
        cells.extend([seeds.len().to_string(), images.to_string()]);
        let mut rec = vec![key.cell.clone()];
        rec.extend(cells[usize::from(has_cells)..].iter().cloned());
        cells.extend(stats.iter().map(|s| table::cell_text(s.as_ref(), seeds.len())));
        let _ = writeln!(md, "| {} |", cells.join(" | "));
        for st in &stats {
            rec.extend(table::stat_fields(st.as_ref()));
        }
        w.write_record(&rec)?;
    }
    write_atomic(&out.join("ground_truth.csv"), &w.into_inner()?)?;
    write_atomic(&out.join("ground_truth.md"), md.as_bytes())?;
    Ok(md)
}

/// Write `randomisation.md`, `randomisation.csv` and `plots/randomisation.png` into `out`;
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
    let has_cells = points.iter().any(|p| !p.cell.is_empty());
    let mut md = String::new();
    let mut head = vec![];
    if has_cells {
        head.push("cell");
    }
    head.extend([
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
    ]);
    let _ = writeln!(md, "| {} |", head.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(head.len()));
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
