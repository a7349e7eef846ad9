//! `just bench-lockout`: what 10⁶ failed logins of unknown users (each from its own
//! address, as a flood of guessed names would come) do to kvmd-auth's password checks and
//! memory. The same checks are timed before and after, interleaved in rounds, so the
//! ratios compare like with like; the checks are the real `Manager::authorize`:
//! - `cached`: a script's X-KVMD headers with the right password (a cache hit and a lockout
//!   lookup: the common case);
//! - `wrong`: a real user's wrong password from a fresh address (a hash, and a lockout
//!   record inserted into the full table, evicting the oldest; the per-user backoff is off
//!   here, or it would refuse most of them without a hash).

use std::time::{Duration, Instant};

use kvmd_auth::{Config, Manager};

/// The failed logins (`KVMD_BENCH_FLOOD` overrides, e.g. to see that memory stays flat).
fn flood() -> u32 {
    std::env::var("KVMD_BENCH_FLOOD").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}
const ROUNDS: usize = 5;
const CHECKS: usize = 20_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn quantiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort_unstable();
    let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (q(0.5), q(0.99), v[v.len() - 1])
}

async fn timed(m: &Manager, kind: &str, round: usize, out: &mut Vec<Duration>) {
    for i in 0..CHECKS {
        let t = Instant::now();
        let _ = match kind {
            "cached" => m.authorize("admin", "admin", "192.0.2.1").await,
            _ => {
                let n = 0x0a00_0000 + (round * CHECKS + i) as u32;
                m.authorize("admin", "wrong", &std::net::Ipv4Addr::from(n).to_string()).await
            }
        };
        out.push(t.elapsed());
    }
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("admin:{}\n", kvmd_auth::hash::make_ssha512("admin")))?;
    // No per-user backoff: the wrong passwords of `wrong` then all hash and insert a record
    // (the table's worst case), instead of being refused in the backoff's pauses.
    let mut cfg = Config {
        htpasswd,
        totp_secret: dir.path().join("totp.secret"),
        sessions: "".into(),
        users: "".into(),
        keys: "".into(),
        ..Config::default()
    };
    cfg.lockout.user_failures = 0;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async {
        let m = Manager::new(cfg);
        let _ = m.authorize("admin", "admin", "192.0.2.1").await;
        let rss_idle = rss_kib();
        // Every sample's room is taken now, so the RSS figures are the service's alone.
        let all = || Vec::with_capacity(ROUNDS * CHECKS);
        let mut before: [Vec<Duration>; 2] = [all(), all()];
        let mut after: [Vec<Duration>; 2] = [all(), all()];
        let flood = flood();
        let per_round = flood / ROUNDS as u32;
        let started = Instant::now();
        let mut rss_rounds = Vec::new();
        for round in 0..ROUNDS {
            // Before the flood's share of this round, then after it: interleaved.
            for (k, kind) in ["cached", "wrong"].iter().enumerate() {
                timed(&m, kind, 2 * round, &mut before[k]).await;
            }
            for i in 0..per_round {
                let n = 0x6400_0000 + round as u32 * per_round + i;
                let _ = m.authorize(&format!("guess{n}"), "x", &std::net::Ipv4Addr::from(n).to_string()).await;
            }
            for (k, kind) in ["cached", "wrong"].iter().enumerate() {
                timed(&m, kind, 2 * round + 1, &mut after[k]).await;
            }
            rss_rounds.push(rss_kib());
        }
        let flood_secs = started.elapsed().as_secs_f64();
        let rss_flooded = rss_kib();
        println!("| check | before p50 | before p99 | after the flood p50 | after p99 | after max | p99 ratio |");
        println!("|---|---|---|---|---|---|---|");
        for (k, kind) in ["cached", "wrong"].iter().enumerate() {
            let (b50, b99, _) = quantiles(before[k].clone());
            let (a50, a99, amax) = quantiles(after[k].clone());
            println!(
                "| {kind} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2} |",
                b50.as_secs_f64() * 1e6,
                b99.as_secs_f64() * 1e6,
                a50.as_secs_f64() * 1e6,
                a99.as_secs_f64() * 1e6,
                amax.as_secs_f64() * 1e6,
                a99.as_secs_f64() / b99.as_secs_f64().max(1e-9)
            );
        }
        println!();
        println!(
            "lockout records: {} (bound {}); RSS idle {} KiB, after each fifth of the flood {:?} KiB, at the end {} KiB; {flood} failures + checks in {flood_secs:.1} s",
            m.lockout_records(),
            kvmd_auth::lockout::MAX_RECORDS,
            rss_idle,
            rss_rounds,
            rss_flooded
        );
    });
    Ok(())
}
