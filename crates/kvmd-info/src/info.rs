//! The `/info` categories, read from the machine (spec `info-log.md` section 1).
//!
//! Every source is a file below the configured root (`/proc`, `/sys`, the platform file,
//! `meta.yaml`, the extras manifests), so tests run against a fake tree with fixed values.
//! The structs keep kvmd's field order, which the WebSocket events show (compact JSON in
//! insertion order); the HTTP envelope sorts keys on its own.
//!
//! kvmd re-parses `meta.yaml` on every request (its `fields=meta` costs 0.75 ms); here it is
//! parsed when its `stat` changes. Extras (which ask systemd about their daemons) and the
//! throttling command are cached for a few seconds.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::yaml;

/// The categories ("subs") of `/info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// `system`
    System,
    /// `auth`
    Auth,
    /// `meta`
    Meta,
    /// `extras`
    Extras,
    /// `health`
    Health,
    /// `uptime`
    Uptime,
    /// `node`
    Node,
    /// `fan`
    Fan,
}

impl Category {
    /// All of them, in kvmd's order.
    pub const ALL: [Category; 8] = [
        Category::System,
        Category::Auth,
        Category::Meta,
        Category::Extras,
        Category::Health,
        Category::Uptime,
        Category::Node,
        Category::Fan,
    ];

    /// The wire names of [`Category::ALL`], in its order.
    pub const NAMES: [&'static str; 8] = {
        let mut names = [""; 8];
        let mut i = 0;
        while i < 8 {
            names[i] = Category::ALL[i].name();
            i += 1;
        }
        names
    };

    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Category::System => "system",
            Category::Auth => "auth",
            Category::Meta => "meta",
            Category::Extras => "extras",
            Category::Health => "health",
            Category::Uptime => "uptime",
            Category::Node => "node",
            Category::Fan => "fan",
        }
    }
}

/// `auth`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Auth {
    enabled: bool,
}

/// `node`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    host: String,
}

/// `fan` (kvmd-fan is not part of the suite: never monitored).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fan {
    monitored: bool,
    state: Option<()>,
}

/// `uptime`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Uptime {
    total: u64,
    parts: Parts,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Parts {
    days: u64,
    hours: u64,
    minutes: u64,
    seconds: u64,
}

/// `health`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    temp: Temp,
    cpu: Cpu,
    mem: Mem,
    throttling: Option<Throttling>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Temp {
    cpu: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Cpu {
    percent: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Mem {
    percent: f64,
    total: u64,
    available: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Throttling {
    raw_flags: i64,
    parsed_flags: Flags,
    ignore_past: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Flags {
    undervoltage: NowPast,
    freq_capped: NowPast,
    throttled: NowPast,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct NowPast {
    now: bool,
    past: bool,
}

/// `system`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct System {
    kvmd: Version,
    streamer: crate::config::StreamerInfo,
    kernel: Kernel,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Version {
    version: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Kernel {
    system: String,
    release: String,
    version: String,
    machine: String,
}

/// `system.platform` (and legacy `hw.platform`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Platform {
    #[serde(rename = "type")]
    kind: String,
    base: Option<String>,
    serial: Option<String>,
    model: Option<String>,
    video: Option<String>,
    board: Option<String>,
}

/// One category's value, serialising as kvmd does.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Value {
    /// `system`
    System(Box<System>),
    /// `auth`
    Auth(Auth),
    /// `meta` (null when the file cannot be parsed)
    Meta(Option<yaml::Value>),
    /// `extras` (null on error)
    Extras(Option<yaml::Value>),
    /// `health`
    Health(Health),
    /// `uptime`
    Uptime(Uptime),
    /// `node`
    Node(Node),
    /// `fan`
    Fan(Fan),
}

type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

struct Cached<T> {
    at: Instant,
    value: T,
}

/// The readers and their caches.
pub struct Info {
    cfg: Config,
    cpu_last: Mutex<Option<(u64, u64)>>,
    meta: Mutex<Option<(Stamp, Option<yaml::Value>)>>,
    extras: Mutex<Option<Cached<Option<yaml::Value>>>>,
    throttling: Mutex<Option<Cached<Option<i64>>>>,
}

const EXTRAS_TTL: Duration = Duration::from_secs(10);
const THROTTLING_TTL: Duration = Duration::from_secs(5);

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim_end_matches(['\0', '\n', ' ']).to_owned())
}

fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

impl Info {
    /// Readers for `cfg`.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            cpu_last: Mutex::new(None),
            meta: Mutex::new(None),
            extras: Mutex::new(None),
            throttling: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The value of one category.
    pub async fn get(&self, c: Category) -> Value {
        match c {
            Category::System => Value::System(Box::new(self.system(true))),
            Category::Auth => Value::Auth(Auth { enabled: self.cfg.auth_enabled }),
            Category::Meta => Value::Meta(self.meta()),
            Category::Extras => Value::Extras(self.extras().await),
            Category::Health => Value::Health(self.health().await),
            Category::Uptime => Value::Uptime(self.uptime()),
            Category::Node => Value::Node(Node { host: hostname() }),
            Category::Fan => Value::Fan(Fan { monitored: false, state: None }),
        }
    }

    /// `system`, with or without `platform` (legacy mode moves it to `hw`).
    pub fn system(&self, with_platform: bool) -> System {
        let u = nix::sys::utsname::uname().ok();
        let s = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            u.as_ref().map(|u| f(u).to_string_lossy().into_owned()).unwrap_or_default()
        };
        System {
            kvmd: Version { version: self.cfg.version.clone() },
            streamer: self.cfg.streamer.clone(),
            kernel: Kernel {
                system: s(|u| u.sysname()),
                release: s(|u| u.release()),
                version: s(|u| u.version()),
                machine: s(|u| u.machine()),
            },
            platform: with_platform.then(|| self.platform()),
        }
    }

    /// `system.platform`.
    pub fn platform(&self) -> Platform {
        let text = std::fs::read_to_string(self.cfg.under_root(&self.cfg.platform)).unwrap_or_default();
        let var = |k: &str| {
            text.lines().find_map(|l| l.trim().strip_prefix(k).and_then(|r| r.strip_prefix('=')).map(str::to_owned))
        };
        let dt = |f: &str| read_trimmed(&self.cfg.under_root(Path::new(f)));
        Platform {
            kind: "rpi".into(),
            base: dt("/proc/device-tree/model"),
            serial: dt("/proc/device-tree/serial-number").map(|s| s.to_uppercase()),
            model: var("PIKVM_MODEL"),
            video: var("PIKVM_VIDEO"),
            board: var("PIKVM_BOARD"),
        }
    }

    /// `meta`: parsed when the file changes; `server.host: "@auto"` becomes the host name.
    pub fn meta(&self) -> Option<yaml::Value> {
        let path = self.cfg.under_root(&self.cfg.meta);
        let now = stamp(&path);
        let mut cache = self.meta.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let parsed = match cache.as_ref() {
            Some((s, v)) if *s == now => v.clone(),
            _ => {
                let v = std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| yaml::parse(&t));
                let v = match v {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot parse meta.yaml; meta is null");
                        None
                    }
                };
                *cache = Some((now, v.clone()));
                v
            }
        };
        drop(cache);
        parsed.map(|mut v| {
            if let Some(server) = v.get_mut("server")
                && server.get("host") == Some(&yaml::Value::Str("@auto".into()))
            {
                server.set("host", yaml::Value::Str(hostname()));
            }
            v
        })
    }

    /// `extras`: one entry per `<dir>/manifest.yaml`.
    pub async fn extras(&self) -> Option<yaml::Value> {
        if let Some(c) = self.extras.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
            && c.at.elapsed() < EXTRAS_TTL
        {
            return c.value.clone();
        }
        let value = match self.read_extras().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the extras; extras is null");
                None
            }
        };
        *self.extras.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Cached { at: Instant::now(), value: value.clone() });
        value
    }

    async fn read_extras(&self) -> Result<yaml::Value, String> {
        let dir = self.cfg.under_root(&self.cfg.extras);
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(d) => d
                .filter_map(Result::ok)
                .filter(|e| e.path().join("manifest.yaml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let path = dir.join(&name).join("manifest.yaml");
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut m = yaml::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if !matches!(m, yaml::Value::Map(_)) {
                return Err(format!("{}: not a mapping", path.display()));
            }
            if let Some(yaml::Value::Str(p)) = m.get("port") {
                let port = self.cfg.extras_ports.get(p).copied().unwrap_or(0);
                m.set("port", yaml::Value::Int(port));
            }
            let daemon = match m.get("daemon") {
                Some(yaml::Value::Str(d)) => Some(d.clone()),
                _ => None,
            };
            let (enabled, started) = match daemon {
                Some(d) => (systemctl("is-enabled", &d).await, systemctl("is-active", &d).await),
                None => (false, false),
            };
            m.set("enabled", yaml::Value::Bool(enabled));
            m.set("started", yaml::Value::Bool(started));
            out.push((sanitize(&name), m));
        }
        // kvmd's WebSocket shows the extras by `place` (vnc 20 before ipmi 21).
        let place = |v: &yaml::Value| match v.get("place") {
            Some(yaml::Value::Int(p)) => *p,
            _ => i64::MAX,
        };
        out.sort_by(|(a, av), (b, bv)| place(av).cmp(&place(bv)).then_with(|| a.cmp(b)));
        Ok(yaml::Value::Map(out))
    }

    /// `uptime` from `/proc/uptime`.
    pub fn uptime(&self) -> Uptime {
        let text = std::fs::read_to_string(self.cfg.under_root(Path::new("/proc/uptime"))).unwrap_or_default();
        let total = text.split_whitespace().next().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        Uptime {
            total,
            parts: Parts {
                days: total / 86400,
                hours: total % 86400 / 3600,
                minutes: total % 3600 / 60,
                seconds: total % 60,
            },
        }
    }

    /// `health`.
    pub async fn health(&self) -> Health {
        let temp = read_trimmed(&self.cfg.under_root(Path::new("/sys/class/thermal/thermal_zone0/temp")))
            .and_then(|t| t.trim().parse::<f64>().ok())
            .map(|t| t / 1000.0);
        let throttling = self.throttling().await.map(|raw| {
            let bit = |n: u32| raw & (1 << n) != 0;
            Throttling {
                raw_flags: raw,
                parsed_flags: Flags {
                    undervoltage: NowPast { now: bit(0), past: bit(16) },
                    freq_capped: NowPast { now: bit(1), past: bit(17) },
                    throttled: NowPast { now: bit(2), past: bit(18) },
                },
                ignore_past: self.cfg.ignore_past,
            }
        });
        Health { temp: Temp { cpu: temp }, cpu: Cpu { percent: self.cpu_percent() }, mem: self.mem(), throttling }
    }

    fn cpu_percent(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.cfg.under_root(Path::new("/proc/stat"))).ok()?;
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 5 {
            return None;
        }
        let total: u64 = v.iter().sum();
        let idle = v[3] + v[4];
        let mut last = self.cpu_last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (t0, i0) = last.unwrap_or((0, 0));
        *last = Some((total, idle));
        let (dt, di) = (total.saturating_sub(t0), idle.saturating_sub(i0));
        if dt == 0 {
            return Some(0);
        }
        Some(((dt - di.min(dt)) as f64 * 100.0 / dt as f64).round() as i64)
    }

    fn mem(&self) -> Mem {
        let text = std::fs::read_to_string(self.cfg.under_root(Path::new("/proc/meminfo"))).unwrap_or_default();
        let kb = |k: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(k).and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                })
                .unwrap_or(0)
                * 1024
        };
        let (total, available) = (kb("MemTotal:"), kb("MemAvailable:"));
        let percent = if total == 0 {
            0.0
        } else {
            ((total - available.min(total)) as f64 * 1000.0 / total as f64).round() / 10.0
        };
        Mem { percent, total, available }
    }

    async fn throttling(&self) -> Option<i64> {
        if let Some(c) = self.throttling.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
            && c.at.elapsed() < THROTTLING_TTL
        {
            return c.value;
        }
        let value = self.run_throttling().await;
        *self.throttling.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Cached { at: Instant::now(), value });
        value
    }

    async fn run_throttling(&self) -> Option<i64> {
        let (cmd, args) = self.cfg.throttling_cmd.split_first()?;
        let cmd = if cmd.starts_with('/') { self.cfg.under_root(Path::new(cmd)) } else { cmd.into() };
        let run = tokio::process::Command::new(cmd).args(args).kill_on_drop(true).output();
        let out = tokio::time::timeout(Duration::from_secs(2), run).await.ok()?.ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text.trim().strip_prefix("throttled=")?;
        i64::from_str_radix(hex.trim_start_matches("0x"), 16).ok()
    }
}

/// kvmd's extras key: runs of characters other than letters, digits and `_` become `_`.
fn sanitize(name: &str) -> String {
    let mut out = String::new();
    let mut in_run = false;
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// `systemctl <verb> <unit>` succeeded (false when systemd cannot be asked).
async fn systemctl(verb: &str, unit: &str) -> bool {
    let unit = if unit.contains('.') { unit.to_owned() } else { format!("{unit}.service") };
    let run = tokio::process::Command::new("systemctl")
        .args([verb, "--quiet", &unit])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(tokio::time::timeout(Duration::from_secs(2), run).await, Ok(Ok(s)) if s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_keys() {
        assert_eq!(sanitize("vnc"), "vnc");
        assert_eq!(sanitize("web-ssh.x"), "web_ssh_x");
        assert_eq!(sanitize("a--b"), "a_b");
    }
}
