//! `/metrics` in the Prometheus text format, written by the `prometheus` crate's encoder, which
//! escapes label values and help text: a label that holds a quote, a backslash or a newline
//! (a mismatch signature, a context name, an instance's address) cannot break the exposition.
//! (prometheus-client's encoder, the other candidate, writes label values as they are.) The
//! facade keeps its own lock-free counters; at each scrape they are copied into families here.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// The families of one scrape, in the order they were first named.
#[derive(Default)]
pub struct Exposition {
    families: Vec<MetricFamily>,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition")
            .field("families", &self.families.len())
            .finish()
    }
}

fn labels(pairs: Labels<'_>) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut p = LabelPair::default();
            p.set_name((*k).to_owned());
            p.set_value((*v).to_owned());
            p
        })
        .collect()
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut MetricFamily {
        let i = match self.families.iter().position(|f| f.name() == name) {
            Some(i) => i,
            None => {
                let mut f = MetricFamily::default();
                f.set_name(name.to_owned());
                f.set_help(help.to_owned());
                f.set_field_type(kind);
                self.families.push(f);
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    /// One sample of a counter family (made on first use).
    pub fn counter(&mut self, name: &str, help: &str, pairs: Labels<'_>, value: f64) {
        let mut m = Metric::default();
        m.set_label(labels(pairs));
        let mut c = Counter::default();
        c.set_value(value);
        m.set_counter(c);
        self.family(name, help, MetricType::COUNTER)
            .mut_metric()
            .push(m);
    }

    /// One sample of a gauge family (made on first use).
    pub fn gauge(&mut self, name: &str, help: &str, pairs: Labels<'_>, value: f64) {
        let mut m = Metric::default();
        m.set_label(labels(pairs));
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
        self.family(name, help, MetricType::GAUGE)
            .mut_metric()
            .push(m);
    }

    /// A histogram from cumulative counts per upper bound (without `+Inf`), its count and sum.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        pairs: Labels<'_>,
        cumulative: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) {
        let mut h = Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            cumulative
                .iter()
                .map(|(bound, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect(),
        );
        let mut m = Metric::default();
        m.set_label(labels(pairs));
        m.set_histogram(h);
        self.family(name, help, MetricType::HISTOGRAM)
            .mut_metric()
            .push(m);
    }

    /// Appends the text exposition. Families without samples are left out (the format has no
    /// way to write them).
    pub fn encode(self, out: &mut String) {
        let families: Vec<MetricFamily> = self
            .families
            .into_iter()
            .filter(|f| !f.get_metric().is_empty())
            .collect();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, out) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
    }
}

#[cfg(test)]
mod tests;
