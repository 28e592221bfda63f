//! The sweep chart: throughput and p99 latency against connection count,
//! one line per target, side by side in one SVG.

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::report::SummaryRow;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// One target's line: (connections, value) points.
type Line<'a> = (&'a str, Vec<(f64, f64)>);

/// Draws `rows` (one per target and connection count) into `path`.
pub fn draw(
    path: &Path,
    rows: &[SummaryRow],
    targets: &[String],
    title: &str,
) -> Result<(), String> {
    draw_inner(path, rows, targets, title)
        .map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

fn draw_inner(
    path: &Path,
    rows: &[SummaryRow],
    targets: &[String],
    title: &str,
) -> Result<(), Box<dyn Error>> {
    let lines = |value: fn(&SummaryRow) -> f64| -> Vec<Line<'_>> {
        targets
            .iter()
            .map(|t| {
                let points = rows
                    .iter()
                    .filter(|r| &r.target == t)
                    .map(|r| (r.connections as f64, value(r)))
                    .collect();
                (t.as_str(), points)
            })
            .collect()
    };
    let throughput = lines(|r| r.median_requests_per_sec / 1000.0);
    let p99 = lines(|r| r.median_p99_us.max(1.0));
    let values = |l: &[Line<'_>]| {
        l.iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .collect::<Vec<_>>()
    };
    let max_conns = rows
        .iter()
        .map(|r| r.connections as f64)
        .fold(1.0, f64::max);
    let x = (0.8..max_conns * 1.25).log_scale();
    let top_rps = values(&throughput).into_iter().fold(1.0, f64::max) * 1.15;
    let p99s = values(&p99);
    let low_p99 = p99s.iter().copied().fold(f64::INFINITY, f64::min).min(1e9);
    let high_p99 = p99s.iter().copied().fold(1.0, f64::max);

    let root = SVGBackend::new(path, (1000, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(500);
    panel(
        &left,
        "throughput (thousand requests/s)",
        x.clone(),
        0.0..top_rps,
        &throughput,
    )?;
    let y = (low_p99 * 0.8..high_p99 * 1.25).log_scale();
    panel(&right, "p99 latency (µs, log scale)", x, y, &p99)?;
    root.present()?;
    Ok(())
}

/// One panel: a line per target over log-scaled connection counts.
fn panel<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    x: X,
    y: Y,
    lines: &[Line<'_>],
) -> Result<(), Box<dyn Error>>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .caption(caption, ("sans-serif", 16))
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("connections (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
