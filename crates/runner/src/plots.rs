//! Figures with plotters, text through its `ab_glyph` feature (the DejaVu Sans font is embedded,
//! so no system font library is needed): bar charts with error bars and line charts.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
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

/// A series of a grouped bar chart: its label, colour and one value per category (`None`: no
/// bar).
pub struct Group {
    /// Legend label.
    pub label: String,
    /// Bar colour.
    pub color: RGBColor,
    /// One value per category.
    pub values: Vec<Option<f64>>,
}

/// One panel of [`grouped_bars`]: its y-axis label, its series, and an optional reference per
/// category drawn as a black tick across the category (what a uniform map scores, say).
pub struct Panel {
    /// The y-axis label.
    pub y_label: String,
    /// The bar series, drawn side by side within each category.
    pub series: Vec<Group>,
    /// `(legend label, one value per category)`.
    pub reference: Option<(String, Vec<Option<f64>>)>,
}

/// The colour of series `i` of a figure: the palette's colours in turn, then a darker round.
pub fn color(i: usize) -> RGBColor {
    let c = PALETTE[i % PALETTE.len()];
    if (i / PALETTE.len()).is_multiple_of(2) { c } else { RGBColor(c.0 / 2, c.1 / 2, c.2 / 2) }
}

/// Mid and light grey, for map baselines beside the palette's colours.
pub const GREYS: [RGBColor; 2] = [RGBColor(110, 110, 110), RGBColor(185, 185, 185)];

/// Panels stacked vertically over the same categories (named under the bottom panel), each with
/// its series' bars side by side per category and a legend to the right.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    categories: &[String],
    panels: &[Panel],
) -> Result<()> {
    let n = categories.len().max(1);
    let most = panels.iter().map(|p| p.series.len()).max().unwrap_or(1).max(1);
    let width = (140 + n * (8 * most + 16)).max(900) as u32 + LEGEND;
    let height = 70 + 300 * panels.len() as u32 + 40;
    draw_png(path, (width, height), |root| {
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(
            title.to_string(),
            (12, 10),
            ("sans-serif", 18).into_font().color(&BLACK),
        ))
        .map_err(plot_err)?;
        let (body, foot) = body.split_vertically(height - 40 - 40);
        let areas = body.split_evenly((panels.len().max(1), 1));
        let mut centres = Vec::new();
        for (k, (panel, area)) in panels.iter().zip(&areas).enumerate() {
            let (plot, legend) = area.split_horizontally(width - LEGEND);
            let values = || {
                panel
                    .series
                    .iter()
                    .flat_map(|s| s.values.iter())
                    .chain(panel.reference.iter().flat_map(|r| r.1.iter()))
                    .flatten()
                    .copied()
            };
            let hi = values().fold(0.0f64, f64::max);
            let lo = values().fold(0.0f64, f64::min);
            let pad = ((hi - lo) * 0.08).max(1e-6);
            let (lo, hi) = (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad);
            let mut chart = ChartBuilder::on(&plot)
                .margin(8)
                .x_label_area_size(8)
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..n as f64, lo..hi)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_desc(panel.y_label.as_str())
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(plot_err)?;
            let m = panel.series.len().max(1) as f64;
            for (j, s) in panel.series.iter().enumerate() {
                chart
                    .draw_series(s.values.iter().enumerate().filter_map(|(c, v)| {
                        let x0 = c as f64 + 0.1 + 0.8 * j as f64 / m;
                        v.map(|v| Rectangle::new([(x0, 0.0), (x0 + 0.8 / m, v)], s.color.filled()))
                    }))
                    .map_err(plot_err)?;
            }
            if let Some((_, refs)) = &panel.reference {
                chart
                    .draw_series(refs.iter().enumerate().filter_map(|(c, v)| {
                        v.map(|v| {
                            PathElement::new(
                                [(c as f64 + 0.05, v), (c as f64 + 0.95, v)],
                                BLACK.stroke_width(2),
                            )
                        })
                    }))
                    .map_err(plot_err)?;
            }
            if k + 1 == panels.len() {
                centres = (0..n).map(|c| chart.backend_coord(&(c as f64 + 0.5, lo)).0).collect();
            }
            let mut entries: Vec<(String, ShapeStyle)> =
                panel.series.iter().map(|s| (s.label.clone(), s.color.filled())).collect();
            if let Some((label, _)) = &panel.reference {
                entries.push((label.clone(), BLACK.filled()));
            }
            for (i, (label, style)) in entries.iter().enumerate() {
                let y = 14 + 18 * i as i32;
                legend.draw(&Rectangle::new([(6, y), (20, y + 10)], *style)).map_err(plot_err)?;
                legend
                    .draw(&Text::new(label.clone(), (26, y - 2), ("sans-serif", 12)))
                    .map_err(plot_err)?;
            }
        }
        let style =
            ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        for (name, x) in categories.iter().zip(centres) {
            foot.draw(&Text::new(name.clone(), (x, 4), style.clone())).map_err(plot_err)?;
        }
        Ok(())
    })
}

/// The width of [`grouped_bars`]' legend column, pixels.
const LEGEND: u32 = 300;
