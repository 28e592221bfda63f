//! The Prometheus text exposition format (version 0.0.4), written by the
//! spec: `# HELP` and `# TYPE` once per family, then its samples, label
//! values and help texts escaped, histograms as cumulative `_bucket{le}`
//! samples ending at `+Inf`, then `_sum` and `_count`.
//!
//! Written here rather than with `prometheus-client`: that crate wants its
//! own metric objects in a registry (the values here already live in the
//! store's plain counters, read once per scrape), pulls a derive macro and
//! a lock crate into the server, and writes OpenMetrics rather than this
//! format. tests/metrics.rs reads what this writes with an independent
//! parser.

use std::fmt::{Display, Write as _};

/// The `Content-Type` of what [`Exposition`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a family is, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// The page written so far.
    pub fn into_string(self) -> String {
        self.out
    }

    /// Starts the family `name`: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{labels} value`. Label names are the caller's
    /// constants; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                push_label_value(&mut self.out, text);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A histogram family: `bounds` are the buckets' upper bounds in
    /// increasing order, `counts[i]` the observations in bucket `i` alone
    /// (not cumulative; one more than `bounds`, the last past every bound).
    pub fn histogram(&mut self, name: &str, help: &str, bounds: &[f64], counts: &[u64], sum: f64) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        self.family(name, Kind::Histogram, help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        let mut le = String::new();
        for (i, &count) in counts.iter().enumerate() {
            cumulative = cumulative.saturating_add(count);
            le.clear();
            match bounds.get(i) {
                Some(bound) => {
                    let _ = write!(le, "{bound}");
                }
                None => le.push_str("+Inf"),
            }
            self.sample(&bucket, &[("le", &le)], cumulative);
        }
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], cumulative);
    }
}

/// `text` as a label value: backslash, double quote and newline escaped.
fn push_label_value(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A PROTOCOL.md counter name in the snake case of metric names:
/// `UnlockNF` → `unlock_nf`, `ForcedGC` → `forced_gc`, `DataIn` → `data_in`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let before = chars[i - 1];
            let after_is_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if before.is_ascii_lowercase() || (before.is_ascii_uppercase() && after_is_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_of_counter_names() {
        for (name, snake) in [
            ("UnlockNF", "unlock_nf"),
            ("ForcedGC", "forced_gc"),
            ("DataIn", "data_in"),
            ("TestLockNF", "test_lock_nf"),
            ("NO", "no"),
            ("In", "in"),
            ("MemoryOverloadCheck", "memory_overload_check"),
            ("ALock", "a_lock"),
            ("BadConn", "bad_conn"),
        ] {
            assert_eq!(snake_case(name), snake, "{name}");
        }
    }

    #[test]
    fn families_samples_and_escapes() {
        let mut page = Exposition::new();
        page.family("x_total", Kind::Counter, "a \\ b\nc");
        page.sample("x_total", &[("v", "q\"\\\n")], 3);
        assert_eq!(
            page.into_string(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{v=\"q\\\"\\\\\\n\"} 3\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut page = Exposition::new();
        page.histogram("h", "help", &[0.001, 0.5], &[2, 0, 5], 1.25);
        let text = page.into_string();
        assert!(text.contains("h_bucket{le=\"0.001\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"0.5\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\"} 7\n"), "{text}");
        assert!(text.contains("h_sum 1.25\nh_count 7\n"), "{text}");
    }
}
