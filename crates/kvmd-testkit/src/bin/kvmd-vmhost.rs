//! `kvmd-vmhost --url https://127.0.0.1:PORT --share DIR [--qemu-pid PID]`: the host's half of the real-kernel
//! tests (`tests/vm/rig.sh`). The guest's nginx is reached through QEMU's hostfwd. Once the
//! guest says it is ready (`DIR/ready`), this replays every `auth_*` golden of kvmd 4.197
//! through it, then runs a request loop with one session while the guest restarts kvmd-auth
//! (`DIR/restart-now` → `DIR/restarted`): no session may be lost and no stretch of failed
//! requests may last a second. `DIR/host-done` lets the guest go on. Exit status 0 = pass.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kvmd_testkit::curl;
use kvmd_testkit::golden::{self, Response};

/// Waits for `path` while `alive` (the guest's QEMU runs).
fn wait_file(path: &Path, timeout: Duration, alive: &dyn Fn() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end && alive() {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    path.exists()
}

fn request(url: &str, args: &[&str]) -> anyhow::Result<Response> {
    let mut a: Vec<String> = vec!["-i".into(), "--http1.1".into(), "--max-time".into(), "10".into()];
    a.extend(args.iter().map(|s| (*s).to_owned()));
    a.push(url.to_owned());
    Response::parse(&curl(&a)?)
}

fn login(base: &str) -> anyhow::Result<String> {
    let r = request(&format!("{base}/api/auth/login"), &["-X", "POST", "-d", "user=admin&passwd=admin"])?;
    r.token().ok_or_else(|| anyhow::anyhow!("login answered {}: {}", r.status(), String::from_utf8_lossy(&r.body)))
}

/// Every `auth_*` capture through the guest's nginx; the failures.
fn replay_auth(base: &str) -> anyhow::Result<(usize, Vec<String>)> {
    let token = login(base)?;
    let mut logged_out = None;
    let mut failures = Vec::new();
    let mut count = 0;
    for row in golden::index()?.into_iter().filter(|r| r.name.starts_with("auth_")) {
        let expected = golden::load("nginx", &row.name)?;
        let opts = golden::options(
            &row,
            &mut golden::Placeholders {
                token: &token,
                fresh_login: &mut || login(base).unwrap_or_default(),
                logged_out: &mut logged_out,
                totp_code: None,
            },
        );
        let mut args = vec!["-X", row.method.as_str()];
        args.extend(opts.iter().map(String::as_str));
        count += 1;
        match request(&format!("{base}{}", row.path), &args) {
            Ok(got) => {
                if let Err(e) = golden::compare(&format!("nginx/{}", row.name), &expected, &got) {
                    failures.push(e);
                }
            }
            Err(e) => failures.push(format!("nginx/{}: {e}", row.name)),
        }
    }
    Ok((count, failures))
}

/// The restart loop: (requests, failed, longest outage, the session survived).
fn restart_under_load(base: &str, share: &Path) -> anyhow::Result<(usize, usize, Duration, bool)> {
    let token = login(base)?;
    let cookie = format!("Cookie: auth_token={token}");
    let url = format!("{base}/api/auth/check");
    let check = || request(&url, &["-H", &cookie]).map(|r| r.status() == 200).unwrap_or(false);
    let begin = Instant::now();
    let (mut total, mut failed) = (0, 0);
    let mut outage: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    let mut asked = false;
    let mut restarted_at: Option<Instant> = None;
    // Until 2 s after the guest reports the restart done (at most 120 s).
    while restarted_at.is_none_or(|t| t.elapsed() < Duration::from_secs(2))
        && begin.elapsed() < Duration::from_secs(120)
    {
        if !asked && begin.elapsed() > Duration::from_millis(1500) {
            std::fs::write(share.join("restart-now"), "")?;
            asked = true;
        }
        if asked && restarted_at.is_none() && share.join("restarted").exists() {
            restarted_at = Some(Instant::now());
        }
        let sent = Instant::now();
        let ok = check();
        total += 1;
        match (ok, outage) {
            (false, None) => {
                failed += 1;
                outage = Some(sent);
            }
            (false, Some(_)) => failed += 1,
            (true, Some(since)) => {
                longest = longest.max(sent - since);
                outage = None;
            }
            (true, None) => {}
        }
    }
    if let Some(since) = outage {
        longest = longest.max(since.elapsed());
    }
    if restarted_at.is_none() {
        anyhow::bail!("the guest never reported the restart");
    }
    // The same session after the restart: nothing was lost.
    let survived = check();
    Ok((total, failed, longest, survived))
}

fn run(base: &str, share: &Path, qemu: Option<u32>) -> anyhow::Result<bool> {
    let alive = || qemu.is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists());
    if !wait_file(&share.join("ready"), Duration::from_secs(300), &alive) {
        anyhow::bail!("the guest did not get ready ({})", if alive() { "300 s" } else { "QEMU exited" });
    }
    let mut ok = true;
    let root = request(&format!("{base}/"), &[])?;
    println!("host: GET {base}/ through hostfwd: {} ({})", root.status(), root.header("Server").unwrap_or("-"));
    let (count, failures) = replay_auth(base)?;
    if failures.is_empty() {
        println!("host: ok    the {count} auth goldens of kvmd 4.197 replay identically through the guest's nginx");
    } else {
        ok = false;
        println!("host: FAIL  {} of {count} auth goldens differ:\n{}", failures.len(), failures.join("\n"));
    }
    let (total, failed, longest, survived) = restart_under_load(base, share)?;
    let verdict = if longest < Duration::from_secs(1) && survived { "ok  " } else { "FAIL" };
    ok &= verdict == "ok  ";
    println!(
        "host: {verdict}  systemctl restart kvmd-auth under a request loop: {total} requests, {failed} failed, \
         longest outage {} ms, session kept: {survived}",
        longest.as_millis()
    );
    Ok(ok)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut url, mut share, mut qemu) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next(),
            "--share" => share = args.next().map(PathBuf::from),
            "--qemu-pid" => qemu = args.next().and_then(|p| p.parse().ok()),
            other => {
                eprintln!("kvmd-vmhost: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(url), Some(share)) = (url, share) else {
        eprintln!("usage: kvmd-vmhost --url https://127.0.0.1:PORT --share DIR [--qemu-pid PID]");
        return ExitCode::from(2);
    };
    let result = run(&url, &share, qemu);
    // Whatever happened, let the guest finish (and power off).
    let _ = std::fs::write(share.join("host-done"), "");
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("host: FAIL  {e:#}");
            ExitCode::FAILURE
        }
    }
}
