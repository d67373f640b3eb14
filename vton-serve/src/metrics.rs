//! Prometheus text-format metrics, kept by hand (no registry crate): requests by route,
//! method and status, a latency histogram by route, queue depth and in-flight gauges.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Latency histogram bucket bounds, seconds.
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// The server's counters and gauges.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Requests admitted and waiting for a worker.
    pub queued: AtomicUsize,
    /// Requests running on a worker.
    pub in_flight: AtomicUsize,
    pub model_loaded: AtomicBool,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        drop(r);
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = l.entry(route.to_string()).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (c, b) in h.counts.iter_mut().zip(BUCKETS) {
            if seconds <= *b {
                *c += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP vton_http_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(s, "# TYPE vton_http_requests_total counter");
        for ((route, method, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "vton_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        let _ = writeln!(
            s,
            "# HELP vton_http_request_duration_seconds Request latency by route."
        );
        let _ = writeln!(s, "# TYPE vton_http_request_duration_seconds histogram");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let route = escape(route);
            for (c, b) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    s,
                    "vton_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                s,
                "vton_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "vton_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "vton_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let gauges = [
            (
                "vton_queue_depth",
                "Try-on requests waiting for a worker.",
                self.queued.load(Ordering::Relaxed),
            ),
            (
                "vton_in_flight",
                "Try-on requests running on a worker.",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (
                "vton_model_loaded",
                "1 once the model is loaded.",
                self.model_loaded.load(Ordering::Relaxed) as usize,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        s
    }
}

/// Appends the batch gauges: jobs by status and pairs running.
pub fn render_jobs(s: &mut String, jobs: &[(&str, i64)], pairs_running: usize) {
    let _ = writeln!(
        s,
        "# HELP vton_jobs Batch jobs by status.\n# TYPE vton_jobs gauge"
    );
    for (state, n) in jobs {
        let _ = writeln!(s, "vton_jobs{{state=\"{}\"}} {n}", escape(state));
    }
    let _ = writeln!(
        s,
        "# HELP vton_batch_pairs_running Batch pairs running on a worker.\n# TYPE vton_batch_pairs_running gauge\nvton_batch_pairs_running {pairs_running}"
    );
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("/a", "GET", 200, 0.003);
        m.observe("/a", "GET", 200, 0.2);
        m.observe("/a", "POST", 400, 100.0);
        let t = m.render();
        assert!(
            t.contains("vton_http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("vton_http_requests_total{route=\"/a\",method=\"POST\",status=\"400\"} 1")
        );
        assert!(
            t.contains("vton_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.005\"} 1")
        );
        assert!(t.contains("vton_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.25\"} 2"));
        assert!(t.contains("vton_http_request_duration_seconds_bucket{route=\"/a\",le=\"60\"} 2"));
        assert!(t.contains("vton_http_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3"));
        assert!(t.contains("vton_http_request_duration_seconds_count{route=\"/a\"} 3"));
        assert!(t.contains("vton_queue_depth 0"));
    }
}
