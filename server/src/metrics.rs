//! Prometheus metrics: one registry, handles cloned into the layers that count.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// Counters of one topic, resolved once so the hot path does no label lookups.
#[derive(Debug, Clone, Default)]
pub struct TopicCounters {
    pub records_in: Counter,
    pub bytes_in: Counter,
    pub records_out: Counter,
    pub bytes_out: Counter,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Every metric the broker exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    records_in: Family<TopicLabel, Counter>,
    bytes_in: Family<TopicLabel, Counter>,
    records_out: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    pub request_seconds: LatencyFamily,
    pub fsync_seconds: Histogram,
    pub sse_subscribers: Gauge,
    resident_bytes: Gauge,
    encode_lock: Mutex<()>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s in doublings.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            records_in: Family::default(),
            bytes_in: Family::default(),
            records_out: Family::default(),
            bytes_out: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            fsync_seconds: latency_histogram(),
            sse_subscribers: Gauge::default(),
            resident_bytes: Gauge::default(),
            encode_lock: Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register("weir_records_in", "Records appended, per topic", m.records_in.clone());
        registry.register(
            "weir_bytes_in",
            "Payload bytes (key, value, headers) appended, per topic",
            m.bytes_in.clone(),
        );
        registry.register(
            "weir_records_out",
            "Records served to fetches and SSE, per topic",
            m.records_out.clone(),
        );
        registry.register(
            "weir_bytes_out",
            "Payload bytes served to fetches and SSE, per topic",
            m.bytes_out.clone(),
        );
        registry.register(
            "weir_http_request_duration_seconds",
            "HTTP request latency",
            m.request_seconds.clone(),
        );
        registry.register(
            "weir_fsync_duration_seconds",
            "Latency of one log fsync",
            m.fsync_seconds.clone(),
        );
        registry.register(
            "weir_sse_subscribers",
            "Open Server-Sent Events subscribers",
            m.sse_subscribers.clone(),
        );
        registry.register(
            "weir_process_resident_memory_bytes",
            "Resident memory of the broker",
            m.resident_bytes.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// The counters of `topic`, created on first use.
    pub fn topic(&self, topic: &str) -> TopicCounters {
        let label = TopicLabel {
            topic: topic.to_owned(),
        };
        TopicCounters {
            records_in: self.records_in.get_or_create(&label).clone(),
            bytes_in: self.bytes_in.get_or_create(&label).clone(),
            records_out: self.records_out.get_or_create(&label).clone(),
            bytes_out: self.bytes_out.get_or_create(&label).clone(),
        }
    }

    /// Forgets a deleted topic's series.
    pub fn remove_topic(&self, topic: &str) {
        let label = TopicLabel {
            topic: topic.to_owned(),
        };
        for family in [&self.records_in, &self.bytes_in, &self.records_out, &self.bytes_out] {
            family.remove(&label);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        self.encode_with("")
    }

    /// The registry's metrics, then `extra` (families in the same text format, computed at
    /// scrape time), then the end marker.
    pub fn encode_with(&self, extra: &str) -> String {
        let _guard = self.encode_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.resident_bytes.set(resident_bytes());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        if let Some(body) = out.strip_suffix("# EOF\n") {
            let mut joined = String::with_capacity(out.len() + extra.len());
            joined.push_str(body);
            joined.push_str(extra);
            joined.push_str("# EOF\n");
            return joined;
        }
        out.push_str(extra);
        out
    }
}

/// Resident set size from /proc (0 where unavailable).
pub fn resident_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
