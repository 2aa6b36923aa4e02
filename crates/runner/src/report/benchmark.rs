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
use crate::table::{self, Key};

/// One image's part-level values for one map source.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct SanityPoint {
    /// Grid cell label.
    pub cell: String,
    /// Seed.
    pub seed: u64,
    /// The stage's row.
    pub row: SanityRow,
}

/// A metric over seeds: mean of the per-seed means, spread (95% CI over images for one seed, sd
/// over seeds for several), images, the mean 95% CI over images.
struct Stat {
    mean: f64,
    spread: f64,
    n: usize,
    image_ci: f64,
}

/// Mean and spread over seeds of per-seed values `(mean, image CI, n)`.
fn over_seeds(per_seed: &[(f64, f64, usize)]) -> Option<Stat> {
    let k = per_seed.len();
    if k == 0 {
        return None;
    }
    let mean = per_seed.iter().map(|s| s.0).sum::<f64>() / k as f64;
    let image_ci = per_seed.iter().map(|s| s.1).sum::<f64>() / k as f64;
    let spread = if k == 1 {
        image_ci
    } else {
        let v = per_seed.iter().map(|s| (s.0 - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
        v.sqrt()
    };
    Some(Stat { mean, spread, n: per_seed.iter().map(|s| s.2).sum(), image_ci })
}

fn cell_text(st: Option<&Stat>, seeds: usize) -> String {
    match st {
        Some(st) if seeds > 1 => {
            format!("{:.3} ± {:.3} [± {:.3}]", st.mean, st.spread, st.image_ci)
        }
        Some(st) => format!("{:.3} ± {:.3}", st.mean, st.spread),
        None => "–".to_string(),
    }
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
        cells.extend(stats.iter().map(|s| cell_text(s.as_ref(), seeds.len())));
        let _ = writeln!(md, "| {} |", cells.join(" | "));
        for st in &stats {
            match st {
                Some(st) => rec.extend([
                    format!("{:.6}", st.mean),
                    format!("{:.6}", st.spread),
                    st.n.to_string(),
                    format!("{:.6}", st.image_ci),
                ]),
                None => rec.extend([String::new(), String::new(), "0".into(), String::new()]),
            }
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
        let k = v.len() as f64;
        let mean = |f: fn(&(f64, f64, usize)) -> f64| v.iter().map(f).sum::<f64>() / k;
        let sd = |f: fn(&(f64, f64, usize)) -> f64, m: f64| {
            if v.len() < 2 {
                0.0
            } else {
                (v.iter().map(|x| (f(x) - m).powi(2)).sum::<f64>() / (k - 1.0)).sqrt()
            }
        };
        let (rho, ssim) = (mean(|x| x.0), mean(|x| x.1));
        let (rho_sd, ssim_sd) = (sd(|x| x.0, rho), sd(|x| x.1, ssim));
        let passes = rho < RANDOMISATION_MAX_SPEARMAN;
        let images = v.iter().map(|x| x.2).max().unwrap_or(0);
        let mut cells = vec![];
        if has_cells {
            cells.push(cell.clone());
        }
        cells.extend([
            step.clone(),
            layers.to_string(),
            method.clone(),
            proxy.clone(),
            stage.clone(),
            v.len().to_string(),
            images.to_string(),
        ]);
        let pm = |m: f64, s: f64| {
            if v.len() > 1 { format!("{m:.3} ± {s:.3}") } else { format!("{m:.3}") }
        };
        cells.extend([
            pm(rho, rho_sd),
            pm(ssim, ssim_sd),
            if passes { "yes" } else { "no" }.into(),
        ]);
        let _ = writeln!(md, "| {} |", cells.join(" | "));
        w.write_record([
            cell.clone(),
            step.clone(),
            layers.to_string(),
            method.clone(),
            proxy.clone(),
            stage.clone(),
            v.len().to_string(),
            images.to_string(),
            format!("{rho:.6}"),
            format!("{rho_sd:.6}"),
            format!("{ssim:.6}"),
            format!("{ssim_sd:.6}"),
            passes.to_string(),
        ])?;
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
