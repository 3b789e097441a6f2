//! Prometheus' text exposition format, version 0.0.4: for each family a
//! `# HELP` and a `# TYPE` line, then one `name{label="value",...} value`
//! line per sample. Only what this endpoint needs: integer gauges and
//! counters.

use std::fmt::Write;

/// A metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One metric family: a name, its help text, its type and its samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Vec<(String, String)>, i64)>,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        Self { name, help, kind, samples: Vec::new() }
    }

    /// A family with one unlabelled sample.
    pub fn single(name: &'static str, help: &'static str, kind: Kind, value: i64) -> Self {
        let mut f = Self::new(name, help, kind);
        f.sample(&[], value);
        f
    }

    /// Add a sample with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: i64) {
        self.samples.push((labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value));
    }
}

/// The exposition of these families.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let kind = match f.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape(f.help, false));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for (labels, value) in &f.samples {
            out.push_str(f.name);
            if !labels.is_empty() {
                let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v, true))).collect();
                let _ = write!(out, "{{{}}}", pairs.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
    out
}

/// Escape help text (`\` and newline) or a label value (also `"`).
fn escape(text: &str, label: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_samples() {
        let mut orders = Family::new("shop_orders", "Orders by status.", Kind::Gauge);
        orders.sample(&[("status", "paid")], 3);
        orders.sample(&[("status", "pending_payment")], 0);
        let runs = Family::single("shop_sweep_runs_total", "Runs.", Kind::Counter, 7);
        assert_eq!(
            render(&[orders, runs]),
            "# HELP shop_orders Orders by status.\n# TYPE shop_orders gauge\nshop_orders{status=\"paid\"} 3\nshop_orders{status=\"pending_payment\"} 0\n\
             # HELP shop_sweep_runs_total Runs.\n# TYPE shop_sweep_runs_total counter\nshop_sweep_runs_total 7\n"
        );
    }

    #[test]
    fn escapes_label_values_and_help() {
        let mut f = Family::new("m", "a \\ b\nc \"q\"", Kind::Gauge);
        f.sample(&[("l", "x\"y\\z\nw")], -1);
        assert_eq!(render(&[f]), "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{l=\"x\\\"y\\\\z\\nw\"} -1\n");
    }
}
