//! A closed-loop HTTP load generator for the benchmarks: keep-alive connections, one client
//! each sending one request at a time, latencies per request.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::corpus::percentile;

/// What one load run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Successful requests.
    pub requests: usize,
    /// Failed requests (transport errors and non-2xx answers).
    pub errors: usize,
    /// Seconds the run took.
    pub elapsed: f64,
    /// Successful requests per second.
    pub rate: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
}

/// `connections` keep-alive connections (one client each, one request at a time) sending GETs
/// to `urls` in rotation for `seconds`, as `token`.
pub async fn load_with(
    urls: Arc<Vec<String>>,
    token: &str,
    seconds: usize,
    connections: usize,
) -> anyhow::Result<Load> {
    // One client per connection: requests on it are sequential, so it keeps one keep-alive
    // connection. Built before the clock starts: building one loads the system's TLS roots,
    // which took a third of the first seconds' CPU when it ran inside the measured window.
    let clients = (0..connections)
        .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build())
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let mut tasks = Vec::new();
    for (connection, client) in clients.into_iter().enumerate() {
        let urls = urls.clone();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0_usize;
            let mut next = connection;
            while Instant::now() < deadline {
                let url = &urls[next % urls.len()];
                next += 1;
                let started = Instant::now();
                let response = client.get(url).bearer_auth(&token).send().await;
                let ok = match response {
                    Ok(response) if response.status().is_success() => {
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                };
                if ok {
                    latencies.push(started.elapsed().as_secs_f64() * 1e3);
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((latencies, errors))
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut own, own_errors) = task.await??;
        latencies.append(&mut own);
        errors += own_errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(Load {
        requests: latencies.len(),
        errors,
        elapsed,
        rate: latencies.len() as f64 / elapsed,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}
