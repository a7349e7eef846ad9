//! Starts the real kvmd-rs stack — every service as its own process on its own unix
//! socket, and a real nginx in front — in a private runtime directory, for the end-to-end
//! tests, the benchmarks and the demo. Also replays the kvmd 4.197 golden captures.
//!
//! # Layout
//! - [`Stack`]: the running stack; everything it started is stopped on drop.
//! - [`golden`]: the golden captures: index, parsing, masking, comparison.
//! - [`curl`]: a real HTTP client (curl) whose `-i` output is the raw response.

pub mod golden;

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The repository root (the testkit lives in `crates/kvmd-testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// Where the suite's binaries are: `$KVMD_BIN_DIR`, else the directory of the running
/// executable or its parent (`target/debug` for `target/debug/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KVMD_BIN_DIR") {
        return d.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    for dir in exe.ancestors().skip(1).take(3) {
        if dir.join("kvmd-auth").is_file() {
            return dir.to_path_buf();
        }
    }
    repo_root().join("target/debug")
}

/// A free loopback TCP port (bound once, then released).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Options of a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// HTTPS port of the front (0 = pick a free one).
    pub https_port: u16,
    /// HTTP port of the redirecting server (0 = pick a free one).
    pub http_port: u16,
    /// htpasswd lines (`user:hash`).
    pub htpasswd: Vec<String>,
    /// Extra `--set` overrides for kvmd-auth.
    pub auth_set: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            https_port: 0,
            http_port: 0,
            htpasswd: vec![format!("admin:{}", kvmd_auth::hash::make_ssha512("admin"))],
            auth_set: Vec::new(),
        }
    }
}

/// A running stack. Dropping it stops every process it started and removes its directory.
#[derive(Debug)]
pub struct Stack {
    /// The private runtime directory.
    pub root: PathBuf,
    _tmp: tempfile::TempDir,
    /// The HTTPS port of the front.
    pub https_port: u16,
    /// The HTTP port (redirects to HTTPS).
    pub http_port: u16,
    children: Vec<(String, Child)>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn mkdir(p: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    mkdir(to, 0o755)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            fs::copy(e.path(), &dest)?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

/// Spawns `cmd` with its output in `log`, dying with us (PR_SET_PDEATHSIG).
#[allow(unsafe_code)]
fn spawn(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(io::Error::from));
    }
    cmd.spawn().with_context(|| format!("cannot start {cmd:?}"))
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > timeout {
            bail!("{what} did not come up within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl Stack {
    /// Starts kvmd-auth and nginx with `opts`.
    pub fn start(opts: StackOptions) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new().prefix("kvmd-rs.").tempdir()?;
        let root = tmp.path().to_path_buf();
        // nginx workers run as nobody when we are root: they must reach the sockets.
        mkdir(&root, 0o755)?;
        for d in ["run", "etc", "var", "log", "nginx"] {
            mkdir(&root.join(d), 0o755)?;
        }
        copy_dir(&repo_root().join("web"), &root.join("web"))?;
        let https_port = if opts.https_port == 0 { free_port()? } else { opts.https_port };
        let http_port = if opts.http_port == 0 { free_port()? } else { opts.http_port };
        let mut stack = Self { root: root.clone(), _tmp: tmp, https_port, http_port, children: Vec::new() };

        fs::write(stack.htpasswd(), opts.htpasswd.join("\n") + "\n")?;
        fs::set_permissions(stack.htpasswd(), fs::Permissions::from_mode(0o600))?;
        fs::write(stack.totp_secret(), "")?;
        fs::set_permissions(stack.totp_secret(), fs::Permissions::from_mode(0o600))?;
        let (socket_group, nginx_user) = if is_root() { ("nogroup", "user nobody nogroup;") } else { ("", "") };
        let auth_toml = format!(
            "htpasswd = {:?}\ntotp_secret = {:?}\nsessions = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n",
            stack.htpasswd(),
            stack.totp_secret(),
            root.join("var/sessions.json"),
            stack.auth_socket(),
            0o660,
            socket_group,
        );
        fs::write(root.join("etc/auth.toml"), auth_toml)?;

        let key = root.join("etc/server.key");
        let crt = root.join("etc/server.crt");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "30",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("openssl (package openssl) is needed for the self-signed certificate")?;
        if !status.success() {
            bail!("openssl could not make a certificate");
        }
        let params = kvmd_nginx::Params {
            user: nginx_user.into(),
            prefix: root.join("nginx").display().to_string(),
            run_dir: root.join("run").display().to_string(),
            web_root: root.join("web").display().to_string(),
            https_listen: format!("127.0.0.1:{https_port}"),
            http_listen: format!("127.0.0.1:{http_port}"),
            https_port,
            cert: crt.display().to_string(),
            key: key.display().to_string(),
            mime_types: "/etc/nginx/mime.types".into(),
        };
        fs::write(root.join("etc/nginx.conf"), kvmd_nginx::render(&params, kvmd_nginx::SERVICES))?;

        stack.start_auth(&opts.auth_set)?;
        let mut nginx = Command::new("nginx");
        nginx.arg("-p").arg(root.join("nginx")).arg("-c").arg(root.join("etc/nginx.conf")).args(["-e", "stderr"]);
        let child = spawn(nginx, &root.join("log/nginx.log"))?;
        stack.children.push(("nginx".into(), child));
        let port = https_port;
        if let Err(e) = wait_until("nginx", Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok())
        {
            bail!("{e}\n{}", stack.log("nginx"));
        }
        Ok(stack)
    }

    /// (Re)starts kvmd-auth, waiting until its socket accepts.
    pub fn start_auth(&mut self, set: &[String]) -> anyhow::Result<()> {
        let mut cmd = Command::new(bin_dir().join("kvmd-auth"));
        cmd.arg("--config").arg(self.root.join("etc/auth.toml")).args(["--log-format", "text", "--log-level", "info"]);
        for s in set {
            cmd.arg("--set").arg(s);
        }
        let child = spawn(cmd, &self.root.join("log/kvmd-auth.log"))?;
        self.children.push(("kvmd-auth".into(), child));
        let sock = self.auth_socket();
        if let Err(e) =
            wait_until("kvmd-auth", Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&sock).is_ok())
        {
            bail!("{e}\n{}", self.log("kvmd-auth"));
        }
        Ok(())
    }

    /// Stops one service (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_service(&mut self, name: &str) {
        let mut kept = Vec::new();
        for (n, child) in self.children.drain(..) {
            if n == name {
                terminate(child);
            } else {
                kept.push((n, child));
            }
        }
        self.children = kept;
    }

    /// The text of `log/<name>.log`.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.root.join(format!("log/{name}.log"))).unwrap_or_default()
    }

    /// kvmd-auth's socket.
    pub fn auth_socket(&self) -> PathBuf {
        self.root.join("run/auth.sock")
    }

    /// The htpasswd file.
    pub fn htpasswd(&self) -> PathBuf {
        self.root.join("etc/htpasswd")
    }

    /// The TOTP secret file.
    pub fn totp_secret(&self) -> PathBuf {
        self.root.join("etc/totp.secret")
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https_port)
    }

    /// The pids of the processes the stack runs.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children.iter().map(|(n, c)| (n.clone(), c.id())).collect()
    }
}

fn terminate(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Stack {
    fn drop(&mut self) {
        // nginx first, so that no request reaches a stopping service.
        self.children.reverse();
        for (_, child) in self.children.drain(..) {
            terminate(child);
        }
    }
}

/// Runs curl with `args` (plus `-sS -k`) and returns its stdout: with `-i`, the raw
/// status line, headers and body as received.
pub fn curl(args: &[String]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("curl").args(["-sS", "-k"]).args(args).output().context("curl is needed")?;
    if !out.status.success() && out.stdout.is_empty() {
        bail!("curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}
