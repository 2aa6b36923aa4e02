//! A run folder's data and its views. `embcam run` writes the data files (per-image metrics,
//! split-level metrics, curves, training history) and then renders the views (summary tables,
//! plots) from them; `embcam report` reads the data files of one or more finished runs back and
//! renders the same views, so a report made later is identical to the one the run printed.
//!
//! Data files of a run folder:
//!
//! | file | columns |
//! |---|---|
//! | `metrics.csv` / `.parquet` | `cell,source,proxy,stage,seed,image_id,` then the metrics |
//! | `split_metrics.csv` | `cell,source,proxy,stage,seed,maxboxacc_v2,pxap` |
//! | `tau_curves.csv` | `cell,source,proxy,stage,seed,tau,loc_acc` |
//! | `faithfulness_curves.csv` | `cell,source,proxy,stage,seed,fraction,deletion,insertion` |
//! | `training.csv` | `cell,seed,epoch,loss,map_at_r,recall_at_1` |
//!
//! Numbers are written in Rust's shortest round-trip form, so reading them back loses nothing
//! ([`data`]).

pub mod benchmark;
mod data;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use embcam_eval::Metric;

pub use data::{
    EpochPoint, FaithPoint, InputRetrievalPoint, ReportData, TauPoint, read_data, write_data,
};

use crate::plots;
use crate::store::write_atomic;
use crate::table::{self, Key};

/// Mean over seeds of curves given per (cell, series, seed): `(series label, points)` per cell.
fn mean_over_seeds<P>(
    points: &[P],
    cell_of: impl Fn(&P) -> &str,
    series_of: impl Fn(&P) -> String,
    xy: impl Fn(&P) -> (f64, f64),
) -> BTreeMap<String, Vec<plots::Series>> {
    // cell → series → x (as bits, to group exactly) → (x, sum of y, n)
    type Sums = BTreeMap<u64, (f64, f64, usize)>;
    let mut acc: BTreeMap<String, BTreeMap<String, Sums>> = BTreeMap::new();
    for p in points {
        let (x, y) = xy(p);
        let e = acc
            .entry(cell_of(p).to_string())
            .or_default()
            .entry(series_of(p))
            .or_default()
            .entry(x.to_bits())
            .or_insert((x, 0.0, 0));
        e.1 += y;
        e.2 += 1;
    }
    acc.into_iter()
        .map(|(cell, series)| {
            let lines = series
                .into_iter()
                .map(|(label, pts)| {
                    let mut v: Vec<(f64, f64)> =
                        pts.into_values().map(|(x, s, n)| (x, s / n as f64)).collect();
                    v.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (label, v)
                })
                .collect();
            (cell, lines)
        })
        .collect()
}

fn series_label(k: &Key) -> String {
    table::source_label(&k.source, &k.proxy)
}

/// `-cellN` for the N-th of several cells, nothing for one.
fn cell_suffix(i: usize, n: usize) -> String {
    if n > 1 { format!("-cell{}", i + 1) } else { String::new() }
}

fn titled(title: &str, cell: &str) -> String {
    if cell.is_empty() { title.to_string() } else { format!("{title} ({cell})") }
}

/// One line chart per cell: `<dir>/<name>[-cellN].png`.
fn per_cell(
    dir: &Path,
    name: &str,
    title: &str,
    (x, y): (&str, &str),
    cells: &BTreeMap<String, Vec<plots::Series>>,
) -> Result<()> {
    for (ci, (cell, series)) in cells.iter().enumerate() {
        let file = dir.join(format!("{name}{}.png", cell_suffix(ci, cells.len())));
        plots::lines(&file, &titled(title, cell), x, y, series)?;
    }
    Ok(())
}

/// Write `summary.md`, `summary.csv` and `plots/` into `out` from `data`; returns the markdown.
pub fn render(out: &Path, data: &ReportData) -> Result<String> {
    let baselines: Vec<&str> = data.baselines.iter().map(String::as_str).collect();
    let summaries = table::summarize(&data.rows, &data.split, &baselines)?;
    let mut md = retrieval_markdown(&data.training, &data.input_retrieval);
    if !md.is_empty() {
        md.push_str("\n## Explanations\n\n");
    }
    md.push_str(&table::markdown(&summaries));
    write_atomic(&out.join("summary.md"), md.as_bytes())?;
    write_atomic(&out.join("summary.csv"), table::summary_csv(&summaries)?.as_bytes())?;
    let comparisons = crate::compare::comparisons(&data.rows, &baselines)?;
    write_atomic(&out.join("comparisons.md"), crate::compare::markdown(&comparisons).as_bytes())?;
    write_atomic(&out.join("comparisons.csv"), crate::compare::csv(&comparisons)?.as_bytes())?;

    let plots_dir = out.join("plots");
    let mut cells: Vec<String> = summaries.iter().map(|s| s.key.cell.clone()).collect();
    cells.dedup();
    for (ci, cell) in cells.iter().enumerate() {
        let suffix = cell_suffix(ci, cells.len());
        let of_cell: Vec<&table::Summary> =
            summaries.iter().filter(|s| &s.key.cell == cell).collect();
        for (metric, (title, reference)) in
            Metric::ALL.into_iter().filter_map(|m| Some((m, m.chart()?)))
        {
            let bars: Vec<plots::Bar> = of_cell
                .iter()
                .filter_map(|s| s.stat(metric).map(|st| (series_label(&s.key), st.mean, st.spread)))
                .collect();
            if bars.is_empty() {
                continue;
            }
            let reference = reference
                .and_then(|r| of_cell.iter().find_map(|s| s.stat(r).map(|st| st.mean)))
                .map(|v| (v, "uniform map"));
            plots::bars(
                &plots_dir.join(format!("{metric}{suffix}.png")),
                &titled(title, cell),
                "mean ± 95% CI",
                &bars,
                reference,
            )?;
        }
    }
    comparison_plots(&plots_dir, &comparisons)?;
    let n_seeds = data.rows.iter().map(|r| r.seed).collect::<std::collections::BTreeSet<_>>().len();
    let note = if n_seeds > 1 { " (mean over seeds)" } else { "" };
    let tau = mean_over_seeds(
        &data.tau,
        |p| &p.key.cell,
        |p| series_label(&p.key),
        |p| (p.tau, p.loc_acc),
    );
    per_cell(
        &plots_dir,
        "loc_acc_vs_tau",
        &format!("Localisation accuracy vs τ{note}"),
        ("τ", "accuracy"),
        &tau,
    )?;
    for (name, title, pick) in [
        (
            "deletion",
            "Deletion: similarity to the class proxy",
            (|p: &FaithPoint| p.deletion) as fn(&FaithPoint) -> f64,
        ),
        ("insertion", "Insertion: similarity to the class proxy", |p: &FaithPoint| p.insertion),
    ] {
        let curves = mean_over_seeds(
            &data.faith,
            |p| &p.key.cell,
            |p| series_label(&p.key),
            |p| (p.fraction, pick(p)),
        );
        per_cell(
            &plots_dir,
            name,
            &format!("{title}{note}"),
            ("fraction of pixels", "y(x')·p"),
            &curves,
        )?;
    }
    if !data.training.is_empty() {
        let run_label = |p: &EpochPoint| {
            if p.cell.is_empty() {
                format!("seed {}", p.seed)
            } else {
                format!("{} seed {}", p.cell, p.seed)
            }
        };
        let mut loss: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut map: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for p in &data.training {
            loss.entry(format!("loss, {}", run_label(p)))
                .or_default()
                .push((p.epoch as f64, p.loss));
            map.entry(format!("MAP@R, {}", run_label(p)))
                .or_default()
                .push((p.epoch as f64, p.map_at_r));
        }
        plots::lines(
            &plots_dir.join("training_loss.png"),
            "Training loss",
            "epoch",
            "loss",
            &loss.into_iter().collect::<Vec<_>>(),
        )?;
        plots::lines(
            &plots_dir.join("training_map_at_r.png"),
            "Validation MAP@R",
            "epoch",
            "MAP@R",
            &map.into_iter().collect::<Vec<_>>(),
        )?;
    }
    Ok(md)
}

/// The checkpoint each (cell, seed) explains: the epoch with the best validation MAP@R (the first
/// of equals), as training selects it.
fn explained_epochs(training: &[EpochPoint]) -> Vec<&EpochPoint> {
    let mut best: BTreeMap<(&str, u64), &EpochPoint> = BTreeMap::new();
    for p in training {
        let e = best.entry((p.cell.as_str(), p.seed)).or_insert(p);
        if p.map_at_r > e.map_at_r {
            *e = p;
        }
    }
    best.into_values().collect()
}

/// The retrieval quality of the explained networks, per seed and mean ± sd over seeds: nobody
/// should read an explanation table without knowing how good the network was. Beside training's
/// validation figures (its own transform), the figures on the explained inputs themselves, for the
/// trained and the untrained network, when the run recorded them.
fn retrieval_markdown(training: &[EpochPoint], inputs: &[InputRetrievalPoint]) -> String {
    let best = explained_epochs(training);
    if best.is_empty() {
        return String::new();
    }
    let on_inputs = |p: &EpochPoint, network: &str| {
        inputs.iter().find(|r| r.cell == p.cell && r.seed == p.seed && r.network == network)
    };
    // Runs merged by `report` may have explained different inputs: name every transform.
    let transforms: std::collections::BTreeSet<&str> =
        inputs.iter().map(|r| r.transform.as_str()).collect();
    let transform = (!transforms.is_empty())
        .then(|| transforms.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" or "));
    let mut out = String::from(
        "## Retrieval quality of the explained networks (evaluation split)\n\n\
         The checkpoint explained is each seed's best epoch by validation MAP@R. *Validation* is \
         training's protocol (the shorter side resized to 8/7 of the input, then a centre crop); ",
    );
    match &transform {
        Some(t) => out.push_str(&format!(
            "*explained inputs* are the evaluation images as the CAM methods see them \
             ({t}), embedded by the trained and by the untrained network.\n\n\
             | cell | seed | epoch | validation Recall@1 | validation MAP@R | \
             explained inputs Recall@1 | explained inputs MAP@R | untrained Recall@1 | \
             untrained MAP@R |\n|---|---|---|---|---|---|---|---|---|\n"
        )),
        None => out.push_str(
            "this run recorded no figures on the explained inputs.\n\n\
             | cell | seed | epoch | validation Recall@1 | validation MAP@R |\n|---|---|---|---|---|\n",
        ),
    }
    let fields = |p: &EpochPoint| -> Vec<Option<f64>> {
        let mut v = vec![Some(p.recall_at_1), Some(p.map_at_r)];
        if transform.is_some() {
            for network in ["trained", "untrained"] {
                let r = on_inputs(p, network);
                v.push(r.map(|r| r.recall_at_1));
                v.push(r.map(|r| r.map_at_r));
            }
        }
        v
    };
    let mut cells: BTreeMap<&str, Vec<Vec<Option<f64>>>> = BTreeMap::new();
    for p in &best {
        let v = fields(p);
        let cols: Vec<String> =
            v.iter().map(|x| x.map_or("–".to_string(), |x| format!("{x:.3}"))).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            p.cell,
            p.seed,
            p.epoch,
            cols.join(" | ")
        ));
        cells.entry(p.cell.as_str()).or_default().push(v);
    }
    for (cell, rows) in cells.iter().filter(|(_, rows)| rows.len() > 1) {
        let cols: Vec<String> = (0..rows[0].len())
            .map(|c| {
                table::over_seeds(rows.iter().filter_map(|r| r[c]))
                    .map_or("–".to_string(), |st| format!("{:.3} ± {:.3}", st.mean, st.spread))
            })
            .collect();
        out.push_str(&format!(
            "| {cell} | mean ± sd over {} seeds | | {} |\n",
            rows.len(),
            cols.join(" | ")
        ));
    }
    out
}

/// One figure per compared metric: the mean difference of every comparison with half its
/// bootstrap interval as the error bar, against the zero line.
fn comparison_plots(dir: &Path, cs: &[crate::compare::Comparison]) -> Result<()> {
    for metric in Metric::COMPARED {
        let bars: Vec<plots::Bar> = cs
            .iter()
            .filter(|c| c.metric == metric)
            .map(|c| {
                let name = table::source_label;
                let cell = if c.cell.is_empty() { String::new() } else { format!("{}: ", c.cell) };
                (
                    format!(
                        "{cell}{} − {}",
                        name(&c.a_source, &c.a_proxy),
                        name(&c.b_source, &c.b_proxy)
                    ),
                    c.mean_diff,
                    (c.ci_high - c.ci_low) / 2.0,
                )
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        plots::bars(
            &dir.join(format!("compare_{metric}.png")),
            &format!("Paired differences, {}", metric.label()),
            "A − B (mean over images, ± half the bootstrap 95% interval)",
            &bars,
            Some((0.0, "no difference")),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(cell: &str) -> EpochPoint {
        EpochPoint {
            cell: cell.into(),
            seed: 0,
            epoch: 1,
            loss: 0.1,
            map_at_r: 0.5,
            recall_at_1: 0.8,
        }
    }

    fn on_inputs(cell: &str, transform: &str) -> InputRetrievalPoint {
        InputRetrievalPoint {
            cell: cell.into(),
            seed: 0,
            network: "trained".into(),
            transform: transform.into(),
            recall_at_1: 0.7,
            map_at_r: 0.4,
        }
    }

    #[test]
    fn the_retrieval_table_names_every_transform_of_merged_runs() {
        let training = [epoch("a"), epoch("b")];
        let one = retrieval_markdown(&training, &[on_inputs("a", "squash")]);
        assert!(one.contains("(`squash`), embedded"), "{one}");
        let both = retrieval_markdown(
            &training,
            &[on_inputs("a", "squash"), on_inputs("b", "center-crop")],
        );
        assert!(both.contains("(`center-crop` or `squash`), embedded"), "{both}");
        // The untrained network's figures are missing here: shown as such, not as zeros.
        assert!(both.contains("| a | 0 | 1 | 0.800 | 0.500 | 0.700 | 0.400 | – | – |"), "{both}");
        let none = retrieval_markdown(&training, &[]);
        assert!(none.contains("recorded no figures on the explained inputs"), "{none}");
    }
}
