//! Counters for `/metrics`, in the Prometheus text format. Kept by hand: a handful of
//! counters and one histogram do not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cohort_engine::Stats;
use cohort_store::{RunStatus, Trigger};

/// Upper bounds of the request-latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// By (method, route, status).
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// By route.
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// By trigger and outcome.
    runs: Mutex<BTreeMap<(String, String), u64>>,
    pub deliveries: AtomicU64,
    pub delivery_failures: AtomicU64,
    pub events_delivered: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        *lock(&self.requests)
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let mut latency = lock(&self.latency);
        let h = latency.entry(route.to_string()).or_default();
        let secs = took.as_secs_f64();
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn run(&self, trigger: Trigger, status: RunStatus) {
        *lock(&self.runs)
            .entry((trigger.to_string(), status.to_string()))
            .or_default() += 1;
    }

    pub fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Everything, with the engine's plugin costs and the outbox lag read just now.
    pub fn render(&self, stats: Stats, lag: u64) -> String {
        let mut out = String::new();
        let mut lines = Vec::new();
        let n = family(
            &mut out,
            "cohort_http_requests_total",
            "counter",
            "HTTP requests served.",
        );
        for ((method, route, status), count) in lock(&self.requests).iter() {
            lines.push(format!(
                "{n}{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            ));
        }
        flush(&mut out, &mut lines);
        let n = family(
            &mut out,
            "cohort_http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request.",
        );
        for (route, h) in lock(&self.latency).iter() {
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                lines.push(format!(
                    "{n}_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                ));
            }
            lines.push(format!(
                "{n}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            ));
            lines.push(format!("{n}_sum{{route=\"{route}\"}} {}", h.sum));
            lines.push(format!("{n}_count{{route=\"{route}\"}} {}", h.count));
        }
        flush(&mut out, &mut lines);
        let n = family(
            &mut out,
            "cohort_runs_total",
            "counter",
            "Group runs, by trigger and outcome.",
        );
        for ((trigger, status), count) in lock(&self.runs).iter() {
            lines.push(format!(
                "{n}{{trigger=\"{trigger}\",status=\"{status}\"}} {count}"
            ));
        }
        flush(&mut out, &mut lines);
        let simple: [(&str, &str, &str, u64); 9] = [
            (
                "cohort_plugin_calls_total",
                "counter",
                "Calls into plugins.",
                stats.calls,
            ),
            (
                "cohort_plugin_evaluations_total",
                "counter",
                "Customers evaluated by a condition.",
                stats.evaluations,
            ),
            (
                "cohort_plugin_fuel_total",
                "counter",
                "Fuel plugins consumed.",
                stats.fuel,
            ),
            (
                "cohort_plugin_traps_total",
                "counter",
                "Plugin calls that trapped or ran out of fuel, time, memory or stack.",
                stats.traps,
            ),
            (
                "cohort_plugin_errors_total",
                "counter",
                "Plugin calls answered with an error or a broken reply.",
                stats.errors,
            ),
            (
                "cohort_outbox_lag_events",
                "gauge",
                "Change events some webhook has yet to receive.",
                lag,
            ),
            (
                "cohort_webhook_deliveries_total",
                "counter",
                "Webhook deliveries a receiver accepted.",
                self.deliveries.load(Ordering::Relaxed),
            ),
            (
                "cohort_webhook_failures_total",
                "counter",
                "Webhook deliveries that failed and will be retried.",
                self.delivery_failures.load(Ordering::Relaxed),
            ),
            (
                "cohort_webhook_events_total",
                "counter",
                "Change events delivered to webhooks.",
                self.events_delivered.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in simple {
            let n = family(&mut out, name, kind, help);
            lines.push(format!("{n} {value}"));
            flush(&mut out, &mut lines);
        }
        out
    }
}

/// Start a metric family; returns its name.
fn family(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name.to_string()
}

fn flush(out: &mut String, lines: &mut Vec<String>) {
    for line in lines.drain(..) {
        out.push_str(&line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_buckets_and_render_as_prometheus_text() {
        let m = Metrics::default();
        m.request("GET", "/v1/groups", 200, Duration::from_micros(700));
        m.request("GET", "/v1/groups", 200, Duration::from_millis(20));
        m.run(Trigger::Manual, RunStatus::Finished);
        let text = m.render(Stats::default(), 3);
        assert!(text.contains(
            "cohort_http_requests_total{method=\"GET\",route=\"/v1/groups\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "cohort_http_request_duration_seconds_bucket{route=\"/v1/groups\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "cohort_http_request_duration_seconds_bucket{route=\"/v1/groups\",le=\"0.025\"} 2"
        ));
        assert!(text.contains("cohort_runs_total{trigger=\"manual\",status=\"finished\"} 1"));
        assert!(text.contains("cohort_outbox_lag_events 3"));
        assert!(text.contains("# TYPE cohort_plugin_fuel_total counter"));
    }
}
