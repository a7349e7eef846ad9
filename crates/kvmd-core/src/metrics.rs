//! Request metrics of this process, for kvmd-info's Prometheus export.
//!
//! The service middleware records every response: its route pattern (the declared path,
//! so arbitrary 404 paths cannot grow the table), status and the time to the response
//! head. Each service serves the snapshot on its own socket at [`SELF_PATH`] (not routed
//! by nginx); kvmd-info collects them and appends them to kvmd's metrics.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where every service serves its [`SelfMetrics`].
pub const SELF_PATH: &str = "/metrics/self";

/// (route, status) → (responses, summed seconds).
type Table = BTreeMap<(String, u16), (u64, f64)>;

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// Counts one response.
pub fn record(route: &str, status: u16, elapsed: Duration) {
    let mut t = TABLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let e = t.entry((route.to_owned(), status)).or_insert((0, 0.0));
    e.0 += 1;
    e.1 += elapsed.as_secs_f64();
}

/// One route and status of one service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteMetric {
    /// The route pattern (`-` for unrouted paths).
    pub route: String,
    /// The HTTP status.
    pub status: u16,
    /// Responses.
    pub count: u64,
    /// Summed time to the response head, in seconds.
    pub seconds_sum: f64,
}

/// What a service reports about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SelfMetrics {
    /// The service name, e.g. `kvmd-auth`.
    pub service: String,
    /// Its resident set size in bytes.
    pub rss_bytes: u64,
    /// Its responses so far.
    pub routes: Vec<RouteMetric>,
}

/// The resident set size of this process (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .flatten()
        .map_or(0, |kb| kb * 1024)
}

/// This process's snapshot.
pub fn snapshot(service: &str) -> SelfMetrics {
    let t = TABLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let routes = t
        .iter()
        .map(|((route, status), (count, sum))| RouteMetric {
            route: route.clone(),
            status: *status,
            count: *count,
            seconds_sum: *sum,
        })
        .collect();
    SelfMetrics { service: service.to_owned(), rss_bytes: rss_bytes(), routes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_snapshots() {
        record("/x", 200, Duration::from_millis(2));
        record("/x", 200, Duration::from_millis(3));
        let s = snapshot("t");
        let x = s.routes.iter().find(|r| r.route == "/x" && r.status == 200).cloned();
        assert_eq!(x.map(|r| r.count), Some(2));
        assert!(s.rss_bytes > 0);
    }
}
