//! `dlm chart LOG -o FILE.svg`: every counter of a statistics log over
//! time, one line per counter on a log scale, as upstream's ChartDLM draws
//! it.
//!
//! A statistics line, this server's or upstream's, is a timestamp
//! (`YYYY-MM-DD HH:MM:SS[.ffffff]`) and then `Name: value` pairs separated
//! by `, ` (PROTOCOL.md, "Counters and the statistics log"). Any other line
//! (start-up, shutdown, audit) is skipped. Zero values are left out of the
//! log, and so have no point on the chart.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

/// One statistics line: seconds since the epoch (of the log's own clock)
/// and its pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub seconds: f64,
    pub pairs: Vec<(String, f64)>,
}

/// The statistics lines of `text`, in file order.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample).collect()
}

/// `line` as a statistics line, or `None` if it is not one.
pub fn sample(line: &str) -> Option<Sample> {
    let mut parts = line.trim_end().splitn(3, ' ');
    let seconds = timestamp(parts.next()?, parts.next()?)?;
    let pairs = parts
        .next()?
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once(": ")?;
            let is_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let value: f64 = value.trim().parse().ok()?;
            (is_name && value.is_finite()).then(|| (name.to_owned(), value))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Sample { seconds, pairs })
}

/// `YYYY-MM-DD` and `HH:MM:SS[.fraction]` as seconds since 1970-01-01
/// 00:00:00 on the same clock.
fn timestamp(date: &str, time: &str) -> Option<f64> {
    let number = |text: &str, digits: usize| -> Option<i64> {
        (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (year, month, day) = (
        number(d.next()?, 4)?,
        number(d.next()?, 2)?,
        number(d.next()?, 2)?,
    );
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = clock.split(':');
    let (hour, minute, second) = (
        number(t.next()?, 2)?,
        number(t.next()?, 2)?,
        number(t.next()?, 2)?,
    );
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let fraction: f64 = if fraction.is_empty() {
        0.0
    } else {
        format!("0.{fraction}").parse().ok()?
    };
    let days = days_from_civil(year, month, day);
    #[allow(clippy::cast_precision_loss)] // seconds since 1970 fit f64's 52 bits
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) as f64 + fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Draws every counter of `samples` into the SVG file `output`; returns
/// how many counters were drawn.
pub fn draw(samples: &[Sample], output: &Path, title: &str) -> Result<usize, Box<dyn Error>> {
    let Some(first) = samples.first() else {
        return Err("no statistics lines in the log".into());
    };
    let start = first.seconds;
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in samples {
        let hours = (sample.seconds - start) / 3600.0;
        for (name, value) in &sample.pairs {
            if *value > 0.0 {
                series.entry(name).or_default().push((hours, *value));
            }
        }
    }
    if series.is_empty() {
        return Err("the statistics lines hold no value above zero".into());
    }
    let last = samples
        .iter()
        .map(|s| (s.seconds - start) / 3600.0)
        .fold(0.0, f64::max);
    let top = series.values().flatten().map(|p| p.1).fold(1.0, f64::max);
    let bottom = series
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(1.0);

    let root = SVGBackend::new(output, (1200, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .caption(title, ("sans-serif", 20))
        .x_label_area_size(40)
        .y_label_area_size(70)
        .right_y_label_area_size(10)
        .build_cartesian_2d(
            0.0..last.max(1.0 / 60.0),
            (bottom * 0.8..top * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("hours since the first line")
        .y_desc("value (log scale)")
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(series.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_lines_parse_and_others_do_not() {
        let line = "2026-11-26 14:00:00.000123 AData: 3, ALock: 12, MemoryMax: 1.25";
        let sample = sample(line).unwrap();
        assert_eq!(sample.pairs.len(), 3);
        assert_eq!(sample.pairs[2], ("MemoryMax".to_owned(), 1.25));
        let base = sample.seconds;
        let later = super::sample("2026-11-26 15:00:00 Idle: 1").unwrap();
        assert!((later.seconds - base - 3600.0 + 0.000123).abs() < 1e-3);
        for other in [
            "2026-11-26 14:00:00.000123 Jackrabbit DLM 0.1.0 listening on 127.0.0.1:37373",
            "2026-11-26 14:00:00.000123 Jackrabbit DLM 0.1.0 stopped. AData: 3, Lock: 4",
            "2026-11-26 14:00:00.000123 DLMerror/NotOwner: 10.0.0.7 12",
            "2026-11-26 14:00:00.000123",
            "2026-13-26 14:00:00 Lock: 1",
            "not a log line",
            "",
        ] {
            assert_eq!(super::sample(other), None, "{other:?}");
        }
    }

    #[test]
    fn days_count_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
