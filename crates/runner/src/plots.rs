//! Figures with plotters, text through its `ab_glyph` feature (the DejaVu Sans font is embedded,
//! so no system font library is needed): bar charts with error bars and line charts.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

static FONT: Once = Once::new();

fn font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font shipped with the crate; a failure here would be a
        // packaging bug, and plotters then falls back to drawing no text.
        let _ = register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        );
    });
}

/// Colours, one per series, distinguishable in print (Okabe–Ito).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

/// Draw a PNG of `size` atomically: into a temporary file beside `path`, then renamed.
fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    font();
    crate::store::write_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)
    })
}

/// One bar: label, value, error-bar half-width.
pub type Bar = (String, f64, f64);

/// A horizontal bar chart with error bars, one bar per label (labels on the vertical axis stay
/// readable however many there are), and an optional dashed reference line (what a uniform map
/// scores, say).
pub fn bars(
    path: &Path,
    title: &str,
    x_label: &str,
    bars: &[Bar],
    reference: Option<(f64, &str)>,
) -> Result<()> {
    let right = bars.iter().map(|b| b.1 + b.2).chain(reference.map(|r| r.0)).fold(0.0f64, f64::max);
    let right = if right > 0.0 { right * 1.1 } else { 1.0 };
    // Negative values (differences) extend the axis to the left of zero.
    let left = bars.iter().map(|b| b.1 - b.2).fold(0.0f64, f64::min) * 1.1;
    let n = bars.len();
    let label_width = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(4) as u32 * 7 + 20;
    draw_png(path, (560 + label_width, 110 + 34 * n as u32), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_width)
            .build_cartesian_2d(left..right, (0..n).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_label)
            .y_labels(n)
            .y_label_formatter(&|y| match y {
                // Top to bottom in the given order.
                SegmentValue::CenterOf(i) => n
                    .checked_sub(1 + *i)
                    .and_then(|k| bars.get(k))
                    .map(|b| b.0.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let row = n - 1 - i;
                let c = PALETTE[i % PALETTE.len()];
                Rectangle::new(
                    [(0.0, SegmentValue::Exact(row)), (b.1, SegmentValue::Exact(row + 1))],
                    c.mix(0.75).filled(),
                )
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let row = SegmentValue::CenterOf(n - 1 - i);
                ErrorBar::new_horizontal(
                    row,
                    if left < 0.0 { b.1 - b.2 } else { (b.1 - b.2).max(0.0) },
                    b.1,
                    b.1 + b.2,
                    BLACK.filled(),
                    8,
                )
            }))
            .map_err(plot_err)?;
        if let Some((x, label)) = reference {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x, SegmentValue::Exact(0)), (x, SegmentValue::Exact(n))],
                    6,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(plot_err)?
                .label(label)
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(plot_err)?;
        }
        Ok(())
    })
}

/// A named series of points.
pub type Series = (String, Vec<(f64, f64)>);

/// A line chart of several series with a legend.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let pts = || series.iter().flat_map(|s| s.1.iter());
    let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x0, x1) = if x0 < x1 { (x0, x1) } else { (0.0, 1.0) };
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    let (y0, y1) = if y0 <= y1 { (y0 - pad, y1 + pad) } else { (0.0, 1.0) };
    draw_png(path, (720, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(plot_err)?;
        for (i, (name, points)) in series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    })
}
