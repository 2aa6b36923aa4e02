//! The metric schema: every metric the harness reports, defined once. A [`Metric`] names its
//! column, labels its table column, extracts its value from an image's scores (or a split's
//! report) and says how it is aggregated; tables, data files, comparisons and plots iterate over
//! [`Metric::PER_IMAGE`], [`Metric::SPLIT`] and [`Metric::TABLE`] instead of holding positions.
//!
//! Adding a metric: a variant here with its name, label, extraction and aggregation, and its place
//! in the lists; nothing else changes.

use crate::aggregate::Report;
use crate::faithfulness::FaithfulnessScores;
use crate::score::ImageScores;

/// A reported metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Mean heatmap ratio in the box, `Σ_{p∈B} H / Σ H`.
    BoxRatio,
    /// Box area / image area: a uniform map's box ratio.
    BoxAreaRatio,
    /// Mean heatmap ratio in the mask.
    MaskRatio,
    /// Mask area / image area: a uniform map's mask ratio.
    MaskAreaRatio,
    /// IoU of the largest component above τ with the box.
    LocIou,
    /// Localisation hit, `loc_iou ≥ iou` (0/1: its mean is the accuracy).
    LocAcc,
    /// Pointing game against the box (tied maxima count fractionally).
    PointingBox,
    /// Pointing game against the mask.
    PointingMask,
    /// The map was all zero (0/1), scored as uniform.
    ZeroMap,
    /// Area under the deletion curve of the similarity to the class proxy.
    DeletionAuc,
    /// Area under the insertion curve.
    InsertionAuc,
    /// MaxBoxAccV2 (Choe et al. 2020) of a split.
    MaxBoxAccV2,
    /// Pixel average precision of a split.
    Pxap,
}

/// How a metric's values are aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// One value per image: mean with a Student-t 95% interval over images (0/1 values: a rate).
    Image,
    /// One value per split and map source: shown as it is (mean ± sd over seeds).
    Split,
}

impl Metric {
    /// The per-image metrics, in the column order of the data files.
    pub const PER_IMAGE: [Metric; 11] = [
        Metric::BoxRatio,
        Metric::BoxAreaRatio,
        Metric::MaskRatio,
        Metric::MaskAreaRatio,
        Metric::LocIou,
        Metric::LocAcc,
        Metric::PointingBox,
        Metric::PointingMask,
        Metric::ZeroMap,
        Metric::DeletionAuc,
        Metric::InsertionAuc,
    ];

    /// The split-level metrics, in column order.
    pub const SPLIT: [Metric; 2] = [Metric::MaxBoxAccV2, Metric::Pxap];

    /// Every metric: per-image, then split-level.
    pub const ALL: [Metric; 13] = {
        let mut all = [Metric::BoxRatio; 13];
        let mut i = 0;
        while i < all.len() {
            let n = Metric::PER_IMAGE.len();
            all[i] = if i < n { Metric::PER_IMAGE[i] } else { Metric::SPLIT[i - n] };
            i += 1;
        }
        all
    };

    /// The summary table's metric columns, in order (the others are in the data files only).
    pub const TABLE: [Metric; 10] = [
        Metric::BoxRatio,
        Metric::BoxAreaRatio,
        Metric::MaskRatio,
        Metric::MaskAreaRatio,
        Metric::LocAcc,
        Metric::MaxBoxAccV2,
        Metric::Pxap,
        Metric::PointingMask,
        Metric::DeletionAuc,
        Metric::InsertionAuc,
    ];

    /// The metrics compared image by image between map sources ([`crate::paired`]).
    pub const COMPARED: [Metric; 3] = [Metric::BoxRatio, Metric::MaskRatio, Metric::PointingMask];

    /// The column name in data files (`box_ratio`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::BoxRatio => "box_ratio",
            Metric::BoxAreaRatio => "box_area_ratio",
            Metric::MaskRatio => "mask_ratio",
            Metric::MaskAreaRatio => "mask_area_ratio",
            Metric::LocIou => "loc_iou",
            Metric::LocAcc => "loc_acc",
            Metric::PointingBox => "pointing_box",
            Metric::PointingMask => "pointing_mask",
            Metric::ZeroMap => "zero_map",
            Metric::DeletionAuc => "deletion_auc",
            Metric::InsertionAuc => "insertion_auc",
            Metric::MaxBoxAccV2 => "maxboxacc_v2",
            Metric::Pxap => "pxap",
        }
    }

    /// The label in tables and plots (`box ratio`).
    pub fn label(self) -> &'static str {
        match self {
            Metric::BoxRatio => "box ratio",
            Metric::BoxAreaRatio => "uniform (box area)",
            Metric::MaskRatio => "mask ratio",
            Metric::MaskAreaRatio => "uniform (mask area)",
            Metric::LocIou => "loc. IoU",
            Metric::LocAcc => "loc. acc.",
            Metric::PointingBox => "pointing (box)",
            Metric::PointingMask => "pointing (mask)",
            Metric::ZeroMap => "zero maps",
            Metric::DeletionAuc => "deletion AUC",
            Metric::InsertionAuc => "insertion AUC",
            Metric::MaxBoxAccV2 => "MaxBoxAccV2",
            Metric::Pxap => "PxAP",
        }
    }

    /// How its values are aggregated.
    pub fn level(self) -> Level {
        match self {
            Metric::MaxBoxAccV2 | Metric::Pxap => Level::Split,
            _ => Level::Image,
        }
    }

    /// The bar chart of a metric: its title and the metric drawn as a reference line (a uniform
    /// map's value); `None` for metrics without a chart.
    pub fn chart(self) -> Option<(&'static str, Option<Metric>)> {
        match self {
            Metric::BoxRatio => Some(("Mean heatmap ratio in the box", Some(Metric::BoxAreaRatio))),
            Metric::MaskRatio => {
                Some(("Mean heatmap ratio in the mask", Some(Metric::MaskAreaRatio)))
            }
            Metric::LocAcc => Some(("Localisation accuracy", None)),
            _ => None,
        }
    }

    /// An image's value; `None` where the metric does not apply (no mask, no faithfulness
    /// curves, a split-level metric). Booleans are 0/1, so a mean is a rate.
    pub fn of_image(self, s: &ImageScores, faith: Option<&FaithfulnessScores>) -> Option<f64> {
        let rate = |x: bool| f64::from(u8::from(x));
        match self {
            Metric::BoxRatio => Some(s.box_ratio),
            Metric::BoxAreaRatio => Some(s.box_area_ratio),
            Metric::MaskRatio => s.mask_ratio,
            Metric::MaskAreaRatio => s.mask_area_ratio,
            Metric::LocIou => Some(s.loc_iou),
            Metric::LocAcc => Some(rate(s.loc_hit)),
            Metric::PointingBox => Some(s.pointing_box),
            Metric::PointingMask => s.pointing_mask,
            Metric::ZeroMap => Some(rate(s.zero_map)),
            Metric::DeletionAuc => faith.map(|f| f.deletion.similarity_auc),
            Metric::InsertionAuc => faith.map(|f| f.insertion.similarity_auc),
            Metric::MaxBoxAccV2 | Metric::Pxap => None,
        }
    }

    /// A split's value; `None` for per-image metrics and where it does not apply (PxAP without
    /// masks).
    pub fn of_split(self, r: &Report) -> Option<f64> {
        match self {
            Metric::MaxBoxAccV2 => Some(r.maxboxacc.v2),
            Metric::Pxap => r.pxap,
            _ => None,
        }
    }

    /// The metric with column name `name`.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_agree_with_levels_and_names_are_unique() {
        assert!(Metric::PER_IMAGE.iter().all(|m| m.level() == Level::Image));
        assert!(Metric::SPLIT.iter().all(|m| m.level() == Level::Split));
        let all: Vec<Metric> = Metric::PER_IMAGE.into_iter().chain(Metric::SPLIT).collect();
        assert_eq!(all, Metric::ALL);
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        assert!(Metric::TABLE.iter().chain(&Metric::COMPARED).all(|m| Metric::ALL.contains(m)));
    }
}
