//! Results of runs, the summary across rounds, and how both are printed:
//! an aligned text table, Markdown (for BENCHMARKS.md) or JSON.
//!
//! Every comparison is a ratio measured in the same run: for each round, the
//! first target's figure divided by the other target's, then the median over
//! the rounds, which cancels the drift of a shared, noisy machine.

use std::fmt::Write as _;

use serde::Serialize;

use crate::mode::Mode;
use crate::target::Kind;

/// The outcome of `--verify` for one run.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Counter increments the fighters saw confirmed.
    pub increments: u64,
    /// Sum of the counters read back at the end.
    pub counted: u64,
    /// Resources whose counter differs from its increments.
    pub violations: u64,
    /// A few of them, as "resource: counter vs increments".
    pub examples: Vec<String>,
    /// `Unlock`s answered `NotOwner` (a hold lost before its release).
    pub lost_holds: u64,
    /// Some fighter could not finish its last cycle in time.
    pub unfinished: bool,
    /// Shared modes: grants checked against the holders the fighters saw
    /// (0 in the counter check).
    pub grants_checked: u64,
    /// Shared modes: the most shared holders of one resource seen at once.
    pub most_shared: u32,
}

impl Verification {
    /// Whether mutual exclusion held.
    pub fn passed(&self) -> bool {
        self.violations == 0 && !self.unfinished
    }
}

/// One run: one target, one connection count, one round.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub target: String,
    pub kind: Kind,
    pub address: String,
    pub mode: Mode,
    pub connections: usize,
    pub pipeline: usize,
    pub resources: u32,
    pub round: usize,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_sec: f64,
    pub lock_requests: u64,
    pub acquisitions: u64,
    /// `None` for the echo ceiling, which grants nothing.
    pub acquisitions_per_sec: Option<f64>,
    pub refusals: u64,
    /// Share of `Lock` requests answered `NotOwner`.
    pub refusal_ratio: Option<f64>,
    /// Jain's index of locks granted per fighter (1 = perfectly even).
    pub fairness: Option<f64>,
    pub errors: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub server_cpu_secs: Option<f64>,
    pub server_cpu_secs_per_million: Option<f64>,
    pub verify: Option<Verification>,
    pub first_unexpected_reply: Option<String>,
    pub first_connection_failure: Option<String>,
}

/// One target at one connection count, over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    pub mode: Mode,
    pub connections: usize,
    pub target: String,
    pub rounds: usize,
    pub median_requests_per_sec: f64,
    pub median_acquisitions_per_sec: Option<f64>,
    pub median_p99_us: f64,
    pub median_server_cpu_secs_per_million: Option<f64>,
    /// The first target's requests/s divided by this one's, median of rounds.
    pub reference_over_this_requests: Option<f64>,
    /// The same for p99 latency.
    pub reference_over_this_p99: Option<f64>,
    /// The same for server CPU per request.
    pub reference_over_this_cpu: Option<f64>,
}

/// The median; the mean of the middle two for an even count.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Medians and ratios per connection count and target; `targets` in command
/// line order, the first being the reference.
pub fn summarize(runs: &[RunResult], targets: &[String]) -> Vec<SummaryRow> {
    let mut counts: Vec<usize> = Vec::new();
    for r in runs {
        if !counts.contains(&r.connections) {
            counts.push(r.connections);
        }
    }
    let mut rows = Vec::new();
    for &connections in &counts {
        let of = |label: &str| -> Vec<&RunResult> {
            runs.iter()
                .filter(|r| r.connections == connections && r.target == label)
                .collect()
        };
        let reference = of(&targets[0]);
        for label in targets {
            let mine = of(label);
            let Some(first) = mine.first() else { continue };
            let collect = |f: &dyn Fn(&RunResult) -> Option<f64>| -> Vec<f64> {
                mine.iter().filter_map(|r| f(r)).collect()
            };
            let ratio = |f: &dyn Fn(&RunResult) -> Option<f64>| -> Option<f64> {
                let mut per_round: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| {
                        let base = reference.iter().find(|b| b.round == r.round)?;
                        let (num, den) = (f(base)?, f(r)?);
                        (den > 0.0).then_some(num / den)
                    })
                    .collect();
                median(&mut per_round)
            };
            let rps = |r: &RunResult| Some(r.requests_per_sec);
            let p99 = |r: &RunResult| Some(r.p99_us);
            let cpu = |r: &RunResult| r.server_cpu_secs_per_million;
            rows.push(SummaryRow {
                mode: first.mode,
                connections,
                target: label.clone(),
                rounds: mine.len(),
                median_requests_per_sec: median(&mut collect(&rps)).unwrap_or(0.0),
                median_acquisitions_per_sec: median(&mut collect(&|r| r.acquisitions_per_sec)),
                median_p99_us: median(&mut collect(&p99)).unwrap_or(0.0),
                median_server_cpu_secs_per_million: median(&mut collect(&cpu)),
                reference_over_this_requests: ratio(&rps),
                reference_over_this_p99: ratio(&p99),
                reference_over_this_cpu: ratio(&cpu),
            });
        }
    }
    rows
}

/// A table that renders as aligned text or Markdown.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            out.push_str(padded.join("  ").trim_end());
            out.push('\n');
        };
        line(&self.headers);
        for row in &self.rows {
            line(row);
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|", self.headers.join(" | "));
        for i in 0..self.headers.len() {
            out.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        out.push('\n');
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{us:.1}µs")
    }
}

fn or_dash(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// One row per run.
pub fn runs_table(runs: &[RunResult]) -> Table {
    let mut t = Table::new(&[
        "target",
        "mode",
        "conns",
        "P",
        "round",
        "req/s",
        "acq/s",
        "req/acq",
        "NotOwner",
        "fairness",
        "p50",
        "p99",
        "p999",
        "errors",
        "CPU s/Mreq",
        "verify",
    ]);
    for r in runs {
        t.rows.push(vec![
            r.target.clone(),
            r.mode.to_string(),
            r.connections.to_string(),
            r.pipeline.to_string(),
            r.round.to_string(),
            rate(r.requests_per_sec),
            or_dash(r.acquisitions_per_sec, rate),
            or_dash(
                (r.acquisitions > 0).then(|| r.requests as f64 / r.acquisitions as f64),
                |v| format!("{v:.2}"),
            ),
            or_dash(r.refusal_ratio, |v| format!("{:.1}%", v * 100.0)),
            or_dash(r.fairness, |v| format!("{v:.3}")),
            micros(r.p50_us),
            micros(r.p99_us),
            micros(r.p999_us),
            r.errors.to_string(),
            or_dash(r.server_cpu_secs_per_million, |v| format!("{v:.2}")),
            r.verify.as_ref().map_or_else(
                || "-".to_string(),
                |v| {
                    if v.passed() && v.grants_checked > 0 {
                        format!("ok ({} grants)", v.grants_checked)
                    } else if v.passed() {
                        format!("ok ({})", v.increments)
                    } else {
                        "VIOLATION".to_string()
                    }
                },
            ),
        ]);
    }
    t
}

/// One row per target and connection count, with the ratios.
pub fn summary_table(rows: &[SummaryRow], reference: &str) -> Table {
    let h_rps = format!("{reference}÷this req/s");
    let h_p99 = format!("{reference}÷this p99");
    let h_cpu = format!("{reference}÷this CPU/req");
    let mut t = Table::new(&[
        "target",
        "mode",
        "conns",
        "rounds",
        "median req/s",
        "median acq/s",
        "median p99",
        "median CPU s/Mreq",
        &h_rps,
        &h_p99,
        &h_cpu,
    ]);
    let ratio = |v: Option<f64>| or_dash(v, |x| format!("{x:.3}"));
    for r in rows {
        t.rows.push(vec![
            r.target.clone(),
            r.mode.to_string(),
            r.connections.to_string(),
            r.rounds.to_string(),
            rate(r.median_requests_per_sec),
            or_dash(r.median_acquisitions_per_sec, rate),
            micros(r.median_p99_us),
            or_dash(r.median_server_cpu_secs_per_million, |v| format!("{v:.2}")),
            ratio(r.reference_over_this_requests),
            ratio(r.reference_over_this_p99),
            ratio(r.reference_over_this_cpu),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: &str, round: usize, rps: f64) -> RunResult {
        RunResult {
            target: target.into(),
            kind: Kind::Echo,
            address: String::new(),
            mode: Mode::Persistent,
            connections: 8,
            pipeline: 1,
            resources: 1,
            round,
            seconds: 1.0,
            // A whole number of requests in the one-second round.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            requests: rps as u64,
            requests_per_sec: rps,
            lock_requests: 0,
            acquisitions: 0,
            acquisitions_per_sec: None,
            refusals: 0,
            refusal_ratio: None,
            fairness: None,
            errors: 0,
            p50_us: 1.0,
            p99_us: rps / 1000.0,
            p999_us: 1.0,
            max_us: 1.0,
            server_cpu_secs: None,
            server_cpu_secs_per_million: None,
            verify: None,
            first_unexpected_reply: None,
            first_connection_failure: None,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn ratios_pair_rounds_then_take_the_median() {
        let runs = vec![
            run("a", 1, 100.0),
            run("b", 1, 50.0),
            run("a", 2, 200.0),
            run("b", 2, 100.0),
            run("a", 3, 90.0),
            run("b", 3, 100.0),
        ];
        let rows = summarize(&runs, &["a".into(), "b".into()]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].reference_over_this_requests, Some(1.0));
        assert_eq!(rows[1].reference_over_this_requests, Some(2.0));
        assert_eq!(rows[1].median_requests_per_sec, 100.0);
        assert_eq!(rows[1].reference_over_this_cpu, None);
    }

    #[test]
    fn tables_render() {
        let runs = vec![run("a", 1, 1234.0)];
        let text = runs_table(&runs).text();
        assert!(text.contains("1.2k"));
        let md = runs_table(&runs).markdown();
        assert!(md.starts_with("| target |"));
        assert!(md.contains("---:|"));
    }
}
