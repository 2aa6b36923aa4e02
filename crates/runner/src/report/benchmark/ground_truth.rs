//! The ground-truth views: `ground_truth_metrics.csv` (one row per image × map source, the
//! [`PartMetric`] values then each part's [`PerPart`] values), `ground_truth.md` / `.csv`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use embcam_cub::PART_NAMES;
use embcam_eval::{PartMass, PartMetric, Summary};

use super::parts::part_importance_plots;
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
    /// In [`value_columns`] order: [`PartMetric::ALL`], then [`PerPart::ALL`] for each CUB part
    /// (rows of older runs stop after the [`PartMetric`] values).
    pub values: Vec<Option<f64>>,
}

/// A per-part value of a ground-truth row, kept for the per-part importance plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerPart {
    /// The map's mass share on the part's region ([`PartMass::mass_share`]).
    MassShare,
    /// The region's area share: a uniform map's mass share.
    AreaShare,
    /// `s(x) − s(x without the part)`, the target score's drop when the part is removed.
    ScoreDrop,
}

impl PerPart {
    /// Every per-part value, in column order within a part.
    pub const ALL: [PerPart; 3] = [PerPart::MassShare, PerPart::AreaShare, PerPart::ScoreDrop];

    fn name(self) -> &'static str {
        match self {
            PerPart::MassShare => "mass_share",
            PerPart::AreaShare => "area_share",
            PerPart::ScoreDrop => "score_drop",
        }
    }

    /// Where part `part`'s (1..=15) value sits in [`GtRow::values`].
    pub fn at(self, part: u32) -> usize {
        PartMetric::ALL.len() + (part as usize - 1) * PerPart::ALL.len() + self as usize
    }
}

/// The value columns of `ground_truth_metrics.csv`: the [`PartMetric`] names, then
/// `mass_share_<part>`, `area_share_<part>`, `score_drop_<part>` for each CUB part
/// (`left_wing`, ...).
pub fn value_columns() -> Vec<String> {
    let mut v: Vec<String> = PartMetric::ALL.iter().map(|m| m.name().to_string()).collect();
    for part in PART_NAMES {
        let part = part.replace(' ', "_");
        v.extend(PerPart::ALL.iter().map(|p| format!("{}_{part}", p.name())));
    }
    v
}

/// One map's row values: `metrics` (in [`PartMetric::ALL`] order), then [`PerPart::ALL`] of each
/// part from `masses` (empty regions: `None`) and `drops` (`(part, s(x) − s(x without it))`).
pub fn row_values(
    metrics: Vec<Option<f64>>,
    masses: &[(u32, PartMass)],
    drops: &[(u32, f64)],
) -> Vec<Option<f64>> {
    let mut v = metrics;
    v.resize(value_columns().len(), None);
    for (part, m) in masses {
        v[PerPart::MassShare.at(*part)] = Some(m.mass_share);
        v[PerPart::AreaShare.at(*part)] = Some(m.area_share);
    }
    for &(part, drop) in drops {
        v[PerPart::ScoreDrop.at(part)] = Some(drop);
    }
    v
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

/// Write `ground_truth_metrics.csv`, `ground_truth.md`, `ground_truth.csv` and
/// `plots/part_importance.png` into `out`;
/// returns the markdown. Map baselines (named in `baselines`) sort last.
pub fn write_ground_truth(out: &Path, rows: &[GtRow], baselines: &[String]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head: Vec<String> = ["cell", "source", "proxy", "stage", "seed", "image_id"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let columns = value_columns();
    head.extend(columns.iter().cloned());
    w.write_record(&head)?;
    for r in rows {
        let mut rec = r.key.fields().to_vec();
        rec.extend([r.seed.to_string(), r.image_id.to_string()]);
        rec.extend((0..columns.len()).map(|i| {
            r.values.get(i).copied().flatten().map(|x| x.to_string()).unwrap_or_default()
        }));
        w.write_record(&rec)?;
    }
    write_atomic(&out.join("ground_truth_metrics.csv"), &w.into_inner()?)?;
    part_importance_plots(&out.join("plots"), rows, baselines)?;

    // key → seed → rows
    let mut groups: BTreeMap<(bool, Key), BTreeMap<u64, Vec<&GtRow>>> = BTreeMap::new();
    for r in rows {
        let baseline = baselines.contains(&r.key.source);
        groups.entry((baseline, r.key.clone())).or_default().entry(r.seed).or_default().push(r);
    }
    let has_cells = rows.iter().any(|r| !r.key.cell.is_empty());
    let mut md = String::new();
    let columns = ["method", "proxy", "stage", "seeds", "images"].into_iter();
    table::write_header(
        &mut md,
        has_cells,
        columns.chain(PartMetric::ALL.iter().map(|m| m.label())),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::benchmark::tests::row;

    #[test]
    fn per_part_values_sit_under_their_part_columns() {
        let cols = value_columns();
        assert_eq!(cols.len(), PartMetric::ALL.len() + 15 * 3);
        let r = row("m", "p", 0);
        let at = |name: &str| r.values[cols.iter().position(|c| c == name).unwrap()];
        assert_eq!(at("part_importance"), Some(0.5));
        assert_eq!(at("mass_share_beak"), Some(0.75));
        assert_eq!(at("area_share_beak"), Some(0.1));
        assert_eq!(at("score_drop_beak"), Some(0.5));
        assert_eq!(at("mass_share_tail"), Some(0.25));
        assert_eq!(at("score_drop_tail"), Some(0.25));
        assert_eq!(at("mass_share_left_wing"), None);
        assert_eq!(PerPart::ScoreDrop.at(15), cols.len() - 1);
    }
}
