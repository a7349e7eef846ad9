//! Starts the real kvmd-rs stack — every service as its own process on its own unix
//! socket, and a real nginx in front — in a private runtime directory, for the end-to-end
//! tests, the benchmarks and the demo. Also replays the kvmd 4.197 golden captures.
//!
//! # Layout
//! - [`Stack`]: the running stack; everything it started is stopped on drop.
//! - [`golden`]: the golden captures: index, parsing, masking, comparison.
//! - [`curl`]: a real HTTP client (curl) whose `-i` output is the raw response.
//! - [`service`]: one service's actix app in-process ([`service::TestService`]) and the
//!   table-driven walk over its declared routes.

pub mod golden;
pub mod service;

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
    /// BliKVM's MJPEG port (0: any free one); the stack also serves BliKVM's paths on its
    /// plain-HTTP port, as a BliKVM does.
    pub blikvm_port: u16,
    /// Extra `--set` overrides for kvmd-auth.
    pub auth_set: Vec<String>,
    /// Extra `--set` overrides for kvmd-info.
    pub info_set: Vec<String>,
    /// Extra `--set` overrides for kvmd-streamer (by default it has no capture device,
    /// like the golden captures' machine).
    pub streamer_set: Vec<String>,
    /// Extra `--set` overrides for kvmd-gpio (by default ATX is kvmd's `gpio` plugin on
    /// the virtual chip; the golden captures' machine had it `disabled`).
    pub gpio_set: Vec<String>,
    /// Extra `--set` overrides for kvmd-msd (by default the storage is `var/msd` and the
    /// drive is the virtual target's; the golden captures' machine had MSD `disabled`).
    pub msd_set: Vec<String>,
    /// Extra environment of kvmd-streamer (e.g. `LD_PRELOAD` of the fake V4L2 device).
    pub streamer_env: Vec<(String, String)>,
    /// Run the virtual target (`kvmd-vtarget`): kvmd-hid's device nodes become its
    /// pseudo-terminals and kvmd-streamer shows its screen. [`Stack::hid_written`] is then
    /// empty: the reports go to the target.
    pub vtarget: bool,
    /// kvmd-info reads a fake `/proc`, `/sys`, `/etc` tree with the fixed values of the
    /// golden captures ([`fake_tree`]) instead of this machine's.
    pub fake_info: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            https_port: 0,
            http_port: 0,
            blikvm_port: 0,
            htpasswd: vec![format!("admin:{}", kvmd_auth::hash::make_ssha512("admin"))],
            auth_set: Vec::new(),
            info_set: Vec::new(),
            streamer_set: Vec::new(),
            gpio_set: Vec::new(),
            msd_set: Vec::new(),
            streamer_env: Vec::new(),
            vtarget: false,
            fake_info: true,
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
    /// The HTTP port (redirects to HTTPS, but serves BliKVM's paths).
    pub http_port: u16,
    /// BliKVM's MJPEG port.
    pub blikvm_port: u16,
    children: Vec<(String, Child)>,
    /// Extra environment per service short name.
    env: Vec<(String, String, String)>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Who nginx's workers run as: `nobody` under root (its `user` line), else this user.
pub fn front_user() -> String {
    if is_root() {
        return "nobody".into();
    }
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
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
        let blikvm_port = if opts.blikvm_port == 0 { free_port()? } else { opts.blikvm_port };
        let env = opts.streamer_env.iter().map(|(k, v)| ("streamer".to_owned(), k.clone(), v.clone())).collect();
        let mut stack =
            Self { root: root.clone(), _tmp: tmp, https_port, http_port, blikvm_port, children: Vec::new(), env };

        fs::write(stack.htpasswd(), opts.htpasswd.join("\n") + "\n")?;
        fs::set_permissions(stack.htpasswd(), fs::Permissions::from_mode(0o600))?;
        fs::write(stack.totp_secret(), "")?;
        fs::set_permissions(stack.totp_secret(), fs::Permissions::from_mode(0o600))?;
        let (socket_group, nginx_user) = if is_root() { ("nogroup", "user nobody nogroup;") } else { ("", "") };
        // The front is nginx's workers: the services believe its identity header only.
        let front = format!("\n[front]\nusers = [{:?}]\n", front_user());
        let auth_toml = format!(
            "htpasswd = {:?}\ntotp_secret = {:?}\nsessions = {:?}\nkeys = {:?}\nusers = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n",
            stack.htpasswd(),
            stack.totp_secret(),
            root.join("var/sessions.json"),
            root.join("var/keys.db"),
            root.join("var/users.db"),
            stack.auth_socket(),
            0o660,
            socket_group,
        );
        fs::write(root.join("etc/auth.toml"), auth_toml)?;

        let info_root = if opts.fake_info { root.join("fake") } else { PathBuf::from("/") };
        if opts.fake_info {
            fake_tree(&info_root)?;
        } else {
            fs::write(root.join("etc/meta.yaml"), "server:\n    host: \"@auto\"\n")?;
            mkdir(&root.join("extras"), 0o755)?;
        }
        let (meta, extras, throttling): (String, String, String) = if opts.fake_info {
            ("/etc/kvmd/meta.yaml".into(), "/usr/share/kvmd/extras".into(), "/usr/bin/vcgencmd".into())
        } else {
            (
                root.join("etc/meta.yaml").display().to_string(),
                root.join("extras").display().to_string(),
                "vcgencmd".into(),
            )
        };
        let info_toml = format!(
            "root = {:?}\nauth_socket = {:?}\nservices = {{ kvmd-auth = {:?}, kvmd-gpio = {:?}, kvmd-hid = {:?}, kvmd-info = {:?}, kvmd-msd = {:?}, kvmd-streamer = {:?} }}\nmeta = {meta:?}\nextras = {extras:?}\nthrottling_cmd = [{throttling:?}, \"get_throttled\"]\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[log]\nsource = \"files\"\ndir = {:?}\n",
            info_root,
            stack.auth_socket(),
            stack.auth_socket(),
            root.join("run/gpio.sock"),
            root.join("run/hid.sock"),
            root.join("run/info.sock"),
            root.join("run/msd.sock"),
            root.join("run/streamer.sock"),
            root.join("run/info.sock"),
            0o660,
            socket_group,
            root.join("log"),
        );
        fs::write(root.join("etc/info.toml"), info_toml + &front)?;

        // kvmd-hid writes through its real OTG backend into plain files standing in for the
        // gadget's /dev/hidg*; tests read what a host would have received.
        mkdir(&root.join("dev"), 0o755)?;
        for d in ["keyboard", "mouse", "mouse-alt"] {
            fs::write(root.join(format!("dev/kvmd-hid-{d}")), b"")?;
        }
        let hid_toml = format!(
            "auth_socket = {:?}\ninfo_socket = {:?}\nstreamer_socket = {:?}\ngpio_socket = {:?}\nmsd_socket = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[backend]\ntype = \"otg\"\nkeyboard = {:?}\nmouse = {:?}\nmouse_alt = {:?}\n",
            stack.auth_socket(),
            root.join("run/info.sock"),
            root.join("run/streamer.sock"),
            root.join("run/gpio.sock"),
            root.join("run/msd.sock"),
            root.join("run/hid.sock"),
            0o660,
            socket_group,
            root.join("dev/kvmd-hid-keyboard"),
            root.join("dev/kvmd-hid-mouse"),
            root.join("dev/kvmd-hid-mouse-alt"),
        );
        fs::write(root.join("etc/hid.toml"), hid_toml + &front)?;

        // kvmd-streamer as on the golden machine: kvmd's v2 USB-dongle parameters (no
        // quality setting), and a capture device that does not exist.
        let streamer_toml = format!(
            "auth_socket = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[params]\nquality = 0\n\n[source]\ntype = \"v4l2\"\ndevice = {:?}\n",
            stack.auth_socket(),
            root.join("run/streamer.sock"),
            0o660,
            socket_group,
            root.join("dev/kvmd-video"),
        );
        fs::write(root.join("etc/streamer.toml"), streamer_toml + &front)?;

        // kvmd-gpio: ATX (kvmd's gpio plugin) on its virtual chip, no GPIO channels.
        let gpio_toml = format!(
            "auth_socket = {:?}\nmeta = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[atx]\ntype = \"gpio\"\n\n[chip]\ntype = \"virtual\"\n",
            stack.auth_socket(),
            root.join("etc/meta.yaml"),
            root.join("run/gpio.sock"),
            0o660,
            socket_group,
        );
        fs::write(root.join("etc/gpio.toml"), gpio_toml + &front)?;

        // kvmd-msd: the storage in var/msd, the virtual target's drive (which announces
        // its medium to the target's screen).
        mkdir(&root.join("var/msd"), 0o755)?;
        let msd_toml = format!(
            "auth_socket = {:?}\nproviders = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[msd]\nstorage = {:?}\n\n[drive]\ntype = \"virtual\"\nannounce = {:?}\n",
            stack.auth_socket(),
            root.join("var/msd-providers.json"),
            root.join("run/msd.sock"),
            0o660,
            socket_group,
            root.join("var/msd"),
            root.join("run/vtarget-medium"),
        );
        fs::write(root.join("etc/msd.toml"), msd_toml + &front)?;

        // kvmd-kasm: the Kasm-style API, asking the stack's services with each caller's key.
        let kasm_toml = format!(
            "images = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[sockets]\nauth = {:?}\nhid = {:?}\nstreamer = {:?}\ngpio = {:?}\nmsd = {:?}\ninfo = {:?}\n",
            root.join("var/kasm-images.json"),
            root.join("run/kasm.sock"),
            0o660,
            socket_group,
            stack.auth_socket(),
            root.join("run/hid.sock"),
            root.join("run/streamer.sock"),
            root.join("run/gpio.sock"),
            root.join("run/msd.sock"),
            root.join("run/info.sock"),
        );
        fs::write(root.join("etc/kasm.toml"), kasm_toml)?;

        // kvmd-blikvm: BliKVM's API, asking the stack's services with each caller's token.
        let blikvm_toml = format!(
            "[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[sockets]\nauth = {:?}\nhid = {:?}\ngpio = {:?}\nmsd = {:?}\n",
            root.join("run/blikvm.sock"),
            0o660,
            socket_group,
            stack.auth_socket(),
            root.join("run/hid.sock"),
            root.join("run/gpio.sock"),
            root.join("run/msd.sock"),
        );
        fs::write(root.join("etc/blikvm.toml"), blikvm_toml)?;

        // kvmd-webrtc: H.264 over WebRTC on 127.0.0.1, fed by kvmd-streamer's encode.
        let webrtc_toml = format!(
            "auth_socket = {:?}\nstreamer_socket = {:?}\n\n[socket]\npath = {:?}\nmode = {}\ngroup = {:?}\n\n[ice]\naddresses = [\"127.0.0.1\"]\nloopback = true\n",
            stack.auth_socket(),
            root.join("run/streamer.sock"),
            root.join("run/webrtc.sock"),
            0o660,
            socket_group,
        );
        fs::write(root.join("etc/webrtc.toml"), webrtc_toml + &front)?;

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
            .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
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
            blikvm_listen: format!("127.0.0.1:{blikvm_port}"),
            blikvm_plain: true,
            blikvm_open_stream: String::new(),
        };
        fs::write(root.join("etc/nginx.conf"), kvmd_nginx::render(&params, &kvmd_nginx::services()))?;

        stack.start_auth(&opts.auth_set)?;
        stack.start_info(&opts.info_set)?;
        let mut streamer_set = opts.streamer_set.clone();
        if opts.vtarget {
            let screen = root.join("run/vtarget.sock");
            let mut cmd = Command::new(bin_dir().join("kvmd-vtarget"));
            cmd.arg("--keyboard").arg(root.join("dev/kvmd-hid-keyboard"));
            cmd.arg("--mouse").arg(root.join("dev/kvmd-hid-mouse"));
            cmd.arg("--mouse-alt").arg(root.join("dev/kvmd-hid-mouse-alt"));
            cmd.arg("--screen").arg(&screen);
            cmd.arg("--panel").arg(root.join("run/vtarget-panel.sock"));
            cmd.arg("--medium").arg(root.join("run/vtarget-medium"));
            let child = spawn(cmd, &root.join("log/kvmd-vtarget.log"))?;
            stack.children.push(("kvmd-vtarget".into(), child));
            if let Err(e) = wait_until("kvmd-vtarget", Duration::from_secs(20), || {
                std::os::unix::net::UnixStream::connect(&screen).is_ok()
            }) {
                bail!("{e}\n{}", stack.log("kvmd-vtarget"));
            }
            streamer_set
                .splice(0..0, ["source.type=vtarget".to_owned(), format!("source.device={}", screen.display())]);
        }
        stack.start_service("hid", &[])?;
        stack.start_service("streamer", &streamer_set)?;
        let mut gpio_set = opts.gpio_set.clone();
        if opts.vtarget {
            // ATX on the target's front panel: its power button and LEDs.
            let panel = root.join("run/vtarget-panel.sock");
            gpio_set.splice(
                0..0,
                ["chip.type=\"vtarget\"".to_owned(), format!("chip.panel={:?}", panel.display().to_string())],
            );
        }
        stack.start_service("gpio", &gpio_set)?;
        stack.start_service("msd", &opts.msd_set)?;
        stack.start_service("kasm", &[])?;
        stack.start_service("blikvm", &[])?;
        stack.start_service("webrtc", &[])?;
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
        self.start_service("auth", set)
    }

    /// (Re)starts kvmd-info, waiting until its socket accepts.
    pub fn start_info(&mut self, set: &[String]) -> anyhow::Result<()> {
        self.start_service("info", set)
    }

    /// (Re)starts `kvmd-<short>` with `etc/<short>.toml` and `--set` overrides, waiting
    /// until `run/<short>.sock` accepts.
    pub fn start_service(&mut self, short: &str, set: &[String]) -> anyhow::Result<()> {
        let name = format!("kvmd-{short}");
        // A running one stops first: left running, it would go on serving the connections
        // it has (nginx's keep-alive ones) beside the new one.
        self.stop_service(&name);
        let mut cmd = Command::new(bin_dir().join(&name));
        cmd.arg("--config").arg(self.root.join(format!("etc/{short}.toml")));
        cmd.args(["--log-format", "text", "--log-level", "info"]);
        for s in set {
            cmd.arg("--set").arg(s);
        }
        for (_, k, v) in self.env.iter().filter(|(svc, _, _)| svc == short) {
            cmd.env(k, v);
        }
        let child = spawn(cmd, &self.root.join(format!("log/{name}.log")))?;
        self.children.push((name.clone(), child));
        let sock = self.root.join(format!("run/{short}.sock"));
        if let Err(e) =
            wait_until(&name, Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&sock).is_ok())
        {
            bail!("{e}\n{}", self.log(&name));
        }
        Ok(())
    }

    /// The bytes written so far to the stand-in of HID device `name` (`keyboard`, `mouse`,
    /// `mouse-alt`).
    pub fn hid_written(&self, name: &str) -> Vec<u8> {
        fs::read(self.root.join(format!("dev/kvmd-hid-{name}"))).unwrap_or_default()
    }

    /// kvmd-info's socket.
    pub fn info_socket(&self) -> PathBuf {
        self.root.join("run/info.sock")
    }

    /// The socket of the service that owns kvmd `path` (`/info` → kvmd-info).
    pub fn socket_for(&self, path: &str) -> PathBuf {
        // Dot segments first, as curl resolves them (`/api/../redfish/v1` is `/redfish/v1`).
        let mut segs: Vec<&str> = Vec::new();
        for seg in path.split('?').next().unwrap_or(path).split('/') {
            match seg {
                // Never above the root (the leading empty segment).
                ".." => {
                    if segs.len() > 1 {
                        segs.pop();
                    }
                }
                "." => {}
                s => segs.push(s),
            }
        }
        let resolved = segs.join("/");
        let p = resolved.strip_prefix("/api").unwrap_or(&resolved);
        let p = kvmd_core::routes::normalize_path(p);
        let owner = kvmd_nginx::services()
            .into_iter()
            .find(|s| s.routes.iter().any(|r| kvmd_core::routes::path_matches(r.path, &p)));
        self.root.join(format!("run/{}.sock", owner.map_or("auth", |s| s.upstream)))
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

    /// Whether `name`'s log gets a line containing `needle` within 5 s (a service writes
    /// its log lines every 20 ms, not at once).
    pub fn log_has(&self, name: &str, needle: &str) -> bool {
        wait_until(needle, Duration::from_secs(5), || self.log(name).contains(needle)).is_ok()
    }

    /// `name`'s log once what was logged until now has been written (the writer's 20 ms
    /// interval, with room to spare).
    pub fn log_settled(&self, name: &str) -> String {
        std::thread::sleep(Duration::from_millis(200));
        self.log(name)
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

/// Writes a fake root with the fixed values of the golden captures' machine: uptime 65425 s,
/// CPU at 36.511 °C, a "Virtual Raspberry Pi" with serial 0000000000000000, platform
/// v2 / hdmiusb / rpi4, `meta.yaml` with `@auto`, kvmd's stock VNC and IPMI extras, and a
/// `vcgencmd` that reports no throttling.
pub fn fake_tree(root: &Path) -> io::Result<()> {
    let files: &[(&str, &str)] = &[
        ("proc/uptime", "65425.61 129000.02\n"),
        ("proc/stat", "cpu  2255 34 2290 22625563 6290 127 456 0 0 0\ncpu0 1132 34 1441 11311718 3675 127 438 0 0 0\n"),
        ("proc/meminfo", "MemTotal:       24684096 kB\nMemFree:        20000000 kB\nMemAvailable:   24086384 kB\n"),
        ("sys/class/thermal/thermal_zone0/temp", "36511\n"),
        ("proc/device-tree/model", "Virtual Raspberry Pi\0"),
        ("proc/device-tree/serial-number", "0000000000000000\0"),
        ("usr/lib/kvmd/platform", "PIKVM_MODEL=v2\nPIKVM_VIDEO=hdmiusb\nPIKVM_BOARD=rpi4\n"),
        ("etc/kvmd/meta.yaml", "server:\n    host: \"@auto\"\n"),
        (
            "usr/share/kvmd/extras/vnc/manifest.yaml",
            "name: VNC\ndescription: Show VNC information\nicon: share/svg/vnc.svg\npath: vnc\ndaemon: kvmd-vnc\nport: vnc/server/port\nplace: 20\n",
        ),
        (
            "usr/share/kvmd/extras/ipmi/manifest.yaml",
            "name: IPMI\ndescription: Show IPMI information\nicon: share/svg/ipmi.svg\npath: ipmi\ndaemon: kvmd-ipmi\nport: ipmi/server/port\nplace: 21\n",
        ),
        ("usr/bin/vcgencmd", "#!/bin/sh\necho throttled=0x0\n"),
    ];
    for (rel, text) in files {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d)?;
        }
        fs::write(&p, text)?;
    }
    for d in ["", "proc", "sys", "etc", "usr"] {
        let _ = fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755));
    }
    fs::set_permissions(root.join("usr/bin/vcgencmd"), fs::Permissions::from_mode(0o755))
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

/// [`curl`] as an unprivileged user: when we are root, as `nobody` (who may use the
/// stack's sockets, like nginx's workers), so that peer-credential auth does not apply.
pub fn curl_unprivileged(args: &[String]) -> anyhow::Result<Vec<u8>> {
    if !is_root() {
        return curl(args);
    }
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "curl", "-sS", "-k"])
        .args(args)
        .output()
        .context("setpriv (util-linux) is needed to run curl unprivileged")?;
    if !out.status.success() && out.stdout.is_empty() {
        bail!("curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}
