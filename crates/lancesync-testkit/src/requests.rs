//! What a stand-in server was asked: each request's route and arrival, for tests and
//! benchmarks that count requests per run.

use std::collections::BTreeMap;
use std::time::Instant;

/// The requests a stand-in received, in order.
#[derive(Debug, Default)]
pub(crate) struct RequestLog(Vec<(String, Instant)>);

impl RequestLog {
    /// One request of `route`, now.
    pub(crate) fn record(&mut self, route: &str) {
        self.0.push((route.to_string(), Instant::now()));
    }

    /// Requests per route.
    pub(crate) fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (route, _) in &self.0 {
            *out.entry(route.clone()).or_default() += 1;
        }
        out
    }

    /// Requests of one route.
    pub(crate) fn count(&self, route: &str) -> usize {
        self.0.iter().filter(|(r, _)| r == route).count()
    }

    /// Every request.
    pub(crate) fn total(&self) -> usize {
        self.0.len()
    }

    /// When each request arrived.
    pub(crate) fn times(&self) -> Vec<Instant> {
        self.0.iter().map(|(_, t)| *t).collect()
    }

    /// Forget them.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}
