//! The summary's exporters, one per format: a markdown table (the printed view) and CSV (every
//! statistic of every metric). Columns come from [`Metric`].

use std::fmt::Write as _;

use anyhow::Result;
use embcam_eval::{Level, Metric};

use super::Summary;

/// The summary as a markdown table. `±` is the 95% CI over images (one seed) or the standard
/// deviation over seeds (several; then the mean 95% CI over images follows in brackets).
pub fn markdown(summaries: &[Summary]) -> String {
    let has_cells = summaries.iter().any(|s| !s.key.cell.is_empty());
    let shown: Vec<Metric> = Metric::TABLE
        .into_iter()
        .filter(|&m| summaries.iter().any(|s| s.stat(m).is_some()))
        .collect();
    let mut out = String::new();
    let columns = ["method", "proxy", "stage", "seeds", "images"].into_iter();
    let columns = columns.chain(shown.iter().map(|m| m.label())).chain(["zero maps"]);
    super::write_header(&mut out, has_cells, columns);
    for s in summaries {
        let mut cells = vec![];
        if has_cells {
            cells.push(s.key.cell.clone());
        }
        cells.extend([s.key.source.clone(), s.key.proxy.clone(), s.key.stage.clone()]);
        cells.push(s.seeds.to_string());
        cells.push(s.images.to_string());
        for &m in &shown {
            cells.push(match s.stat(m) {
                // A split-level number of one seed has no spread to show.
                Some(st) if m.level() == Level::Split && s.seeds == 1 => format!("{:.3}", st.mean),
                Some(st) if m.level() == Level::Split => {
                    format!("{:.3} ± {:.3}", st.mean, st.spread)
                }
                st => super::cell_text(st.as_ref(), s.seeds),
            });
        }
        cells.push(s.zero_maps.to_string());
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// The summary as CSV: keys, then `<metric>_mean`, `<metric>_spread` (95% CI over images for one
/// seed, sd over seeds for several), `<metric>_n` and `<metric>_image_ci` (the 95% CI over images,
/// averaged over seeds) for every metric.
pub fn summary_csv(summaries: &[Summary]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head: Vec<String> =
        ["cell", "method", "proxy", "stage", "seeds", "images", "zero_maps"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    for m in Metric::ALL {
        head.extend([
            format!("{m}_mean"),
            format!("{m}_spread"),
            format!("{m}_n"),
            format!("{m}_image_ci"),
        ]);
    }
    w.write_record(&head)?;
    for s in summaries {
        let mut rec = s.key.fields().to_vec();
        rec.extend([s.seeds.to_string(), s.images.to_string(), s.zero_maps.to_string()]);
        for st in &s.stats {
            rec.extend(super::stat_fields(st.as_ref()));
        }
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}
