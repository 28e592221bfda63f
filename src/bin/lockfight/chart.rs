//! The sweep chart: throughput and p99 latency against connection count,
//! one line per target, side by side in one SVG.

use std::path::Path;

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

/// One point of a target's line: connections, thousand requests/s, p99 µs.
type Point = (f64, f64, f64);

fn draw_inner(
    path: &Path,
    rows: &[SummaryRow],
    targets: &[String],
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let series: Vec<(&String, Vec<Point>)> = targets
        .iter()
        .map(|t| {
            let points = rows
                .iter()
                .filter(|r| &r.target == t)
                .map(|r| {
                    (
                        r.connections as f64,
                        r.median_requests_per_sec / 1000.0,
                        r.median_p99_us,
                    )
                })
                .collect();
            (t, points)
        })
        .collect();
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let max_conns = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let max_rps = all.clone().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let max_p99 = all.map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let x_range = 0.8..max_conns * 1.25;

    let root = SVGBackend::new(path, (1000, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(500);

    let panels: [(&DrawingArea<_, _>, &str, f64, usize); 2] = [
        (&left, "throughput (thousand requests/s)", max_rps, 1),
        (&right, "p99 latency (µs)", max_p99, 2),
    ];
    for (area, label, y_max, field) in panels {
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .caption(label, ("sans-serif", 16))
            .build_cartesian_2d(x_range.clone().log_scale(), 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("connections (log scale)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let xy: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.0, if field == 1 { p.1 } else { p.2 }))
                .collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(xy.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
