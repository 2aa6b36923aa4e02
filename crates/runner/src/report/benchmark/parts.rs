//! `plots/part_importance.png`: per CUB part, the score drop when it is removed against each map's
//! mass on it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use embcam_cub::PART_NAMES;

use super::ground_truth::{GtRow, PerPart};
use crate::plots;
use crate::table::{self, Key};

/// Mean of the values given: `None` for none.
#[derive(Default, Clone, Copy)]
struct Mean(f64, usize);

impl Mean {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.0 += v;
            self.1 += 1;
        }
    }
    fn get(self) -> Option<f64> {
        (self.1 > 0).then(|| self.0 / self.1 as f64)
    }
}

/// Per-part means of rows: `[part 1..=15]` of one [`PerPart`] value.
fn part_means<'a>(rows: impl Iterator<Item = &'a GtRow>, what: PerPart) -> [Mean; 15] {
    let mut m = [Mean::default(); 15];
    for r in rows {
        for (k, mean) in m.iter_mut().enumerate() {
            mean.add(r.values.get(what.at(k as u32 + 1)).copied().flatten());
        }
    }
    m
}

/// `plots/part_importance[-cellN].png`, one per cell: per CUB part, the mean target-score drop
/// when the part is removed (one bar per proxy) above the mean share of each map source's mass on
/// the part, beside the part's area share (what a uniform map gets); parts sorted by the first
/// proxy's drop. Nothing for rows without per-part values (runs made before they were kept).
pub(super) fn part_importance_plots(
    dir: &Path,
    rows: &[GtRow],
    baselines: &[String],
) -> Result<()> {
    let mut cells: BTreeMap<&str, Vec<&GtRow>> = BTreeMap::new();
    for r in rows {
        cells.entry(r.key.cell.as_str()).or_default().push(r);
    }
    let n_cells = cells.len();
    for (ci, (cell, rows)) in cells.into_iter().enumerate() {
        // What the model uses: the drops of each proxy's own rows (every method has the same).
        let mut by_proxy: BTreeMap<&str, Vec<&GtRow>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.key.proxy != "-" && !baselines.contains(&r.key.source)) {
            by_proxy.entry(r.key.proxy.as_str()).or_default().push(r);
        }
        if by_proxy.is_empty() {
            by_proxy.insert("first proxy", rows.clone());
        }
        let drops: Vec<(String, [Mean; 15])> = by_proxy
            .into_iter()
            .map(|(p, rs)| (p.to_string(), part_means(rs.into_iter(), PerPart::ScoreDrop)))
            .collect();
        let area = part_means(rows.iter().copied(), PerPart::AreaShare);
        let stages: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.key.stage.as_str()).filter(|s| *s != "-").collect();
        let mut sources: BTreeMap<(bool, &Key), Vec<&GtRow>> = BTreeMap::new();
        for r in &rows {
            sources.entry((baselines.contains(&r.key.source), &r.key)).or_default().push(r);
        }
        let masses: Vec<(bool, String, [Mean; 15])> = sources
            .into_iter()
            .map(|((baseline, k), rs)| {
                let mut label = table::source_label(&k.source, &k.proxy);
                if stages.len() > 1 && k.stage != "-" {
                    label = format!("{label} @ {}", k.stage);
                }
                (baseline, label, part_means(rs.into_iter(), PerPart::MassShare))
            })
            .collect();
        // The parts with data, the most important (first proxy's drop) first.
        let mut parts: Vec<usize> = (0..15)
            .filter(|&k| area[k].get().is_some() || drops.iter().any(|d| d.1[k].get().is_some()))
            .collect();
        if parts.is_empty() {
            continue;
        }
        let key = |k: &usize| drops.first().and_then(|d| d.1[*k].get()).unwrap_or(f64::MIN);
        parts.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
        let pick = |m: &[Mean; 15]| parts.iter().map(|&k| m[k].get()).collect::<Vec<_>>();
        let top = plots::Panel {
            y_label: "mean drop of the target score when removed".into(),
            series: drops
                .iter()
                .enumerate()
                .map(|(i, (p, m))| plots::Group {
                    label: format!("score drop, proxy {p}"),
                    color: plots::color(i),
                    values: pick(m),
                })
                .collect(),
            reference: None,
        };
        let (mut colored, mut grey) = (0, 0);
        let bottom = plots::Panel {
            y_label: "mean share of the map's mass".into(),
            series: masses
                .iter()
                .map(|(baseline, label, m)| {
                    let color = if *baseline {
                        grey += 1;
                        plots::GREYS[(grey - 1) % plots::GREYS.len()]
                    } else {
                        colored += 1;
                        plots::color(colored - 1)
                    };
                    plots::Group { label: label.clone(), color, values: pick(m) }
                })
                .collect(),
            reference: Some(("area share (uniform map)".into(), pick(&area))),
        };
        let names: Vec<String> = parts.iter().map(|&k| PART_NAMES[k].to_string()).collect();
        let suffix = if n_cells > 1 { format!("-cell{}", ci + 1) } else { String::new() };
        let mut title = "Per-part importance: the score drop when a part is removed (top) against \
                         each map's mass on it (bottom), mean over images"
            .to_string();
        if !cell.is_empty() {
            title = format!("{title} ({cell})");
        }
        std::fs::create_dir_all(dir)?;
        let file = dir.join(format!("part_importance{suffix}.png"));
        plots::grouped_bars(&file, &title, &names, &[top, bottom])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::benchmark::tests::row;

    #[test]
    fn part_means_average_each_part_over_the_rows_that_have_it() {
        let (a, mut b) = (row("m", "p", 0), row("m", "p", 1));
        b.values[PerPart::ScoreDrop.at(2)] = Some(1.5);
        b.values[PerPart::ScoreDrop.at(14)] = None;
        let m = part_means([&a, &b].into_iter(), PerPart::ScoreDrop);
        // beak: (0.5 + 1.5) / 2 = 1; tail: only a's 0.25; wing: none.
        assert_eq!(m[1].get(), Some(1.0));
        assert_eq!(m[13].get(), Some(0.25));
        assert_eq!(m[8].get(), None);
    }
}
