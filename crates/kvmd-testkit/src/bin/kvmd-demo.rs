//! `kvmd-demo`: the whole suite in the foreground, with real nginx on
//! https://127.0.0.1:8443, user admin / password admin. Ctrl-C or SIGTERM stops
//! everything it started.

use nix::sys::signal::{SigSet, Signal};

fn main() -> anyhow::Result<()> {
    let https_port = std::env::var("KVMD_DEMO_HTTPS_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8443);
    let http_port = std::env::var("KVMD_DEMO_HTTP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let blikvm_port = std::env::var("KVMD_DEMO_BLIKVM_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8008);
    let mut opts =
        kvmd_testkit::StackOptions { https_port, http_port, blikvm_port, fake_info: false, ..Default::default() };
    // The host: the virtual target (its HID nodes take kvmd-hid's reports, its 720p screen
    // shows what was typed and the pointer); quality settable; H.264 on, for WebRTC
    // (`/janus/ws`, kvmd-webrtc on 127.0.0.1).
    opts.vtarget = true;
    opts.streamer_set = vec!["params.quality=80".into(), "params.h264_bitrate=5000".into()];
    // `--bench-users` (the bench-* scripts): also a bcrypt user `bc` (password admin) for
    // `just bench-auth`, and no virtual target: on a device the target is another computer,
    // and its rendering must not take the two cores the suite is measured on (the HID nodes
    // are then plain files, which take every report like f_hid with a host that reads).
    if std::env::args().any(|a| a == "--bench-users") {
        opts.htpasswd.push(format!("bc:{}", kvmd_auth::hash::make_bcrypt("admin", 12)?));
        opts.vtarget = false;
    }
    let stack = kvmd_testkit::Stack::start(opts)?;
    // The demo's (and only the demo's) admin API key: id `demo`, secret `demo`.
    let keys = kvmd_auth::keys::KeyStore::open(&stack.root.join("var/keys.db"))?;
    let now = i64::try_from(kvmd_auth::sessions::unix_now()).unwrap_or(i64::MAX);
    let demo = kvmd_auth::keys::ApiKey {
        id: "demo".into(),
        name: "the demo's key".into(),
        scope: kvmd_auth::keys::Scope::Admin,
        role: kvmd_core::role::Role::Admin,
        expires: None,
        networks: Vec::new(),
        created: now,
    };
    keys.create(&demo, "demo")?;
    // Children are running with the default signal mask; now wait for ours.
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()?;
    println!();
    println!("  kvmd-rs demo is running.");
    println!();
    println!("  Open      https://127.0.0.1:{https_port}/   (self-signed certificate: accept it)");
    println!("  Login     admin / admin");
    println!(
        "  API key   demo / demo (admin): curl -k -H 'Authorization: Bearer demo:demo' https://127.0.0.1:{https_port}/api/info"
    );
    println!(
        "  Kasm API  curl -k -X POST https://127.0.0.1:{https_port}/api/public/get_images -d '{{\"api_key\": \"demo\", \"api_key_secret\": \"demo\"}}'"
    );
    println!("  Try       curl -k -u admin:admin https://127.0.0.1:{https_port}/api/auth/check");
    println!(
        "  BliKVM    curl -k https://127.0.0.1:{https_port}/api/login -d '{{\"username\": \"admin\", \"password\": \"admin\"}}'"
    );
    println!(
        "            then /keyboard with Authorization: Bearer <token>; MJPEG at http://127.0.0.1:{blikvm_port}/stream?token=<token>"
    );
    println!("  Screen    the virtual target's: type and click in the page; MJPEG at /streamer/stream");
    println!("  Runtime   {}  (sockets in run/, logs in log/)", stack.root.display());
    for (name, pid) in stack.pids() {
        println!("  Process   {name} (pid {pid})");
    }
    println!();
    println!("  Stop with Ctrl-C (or SIGTERM): every process above is stopped and the directory removed.");
    println!();
    let sig = set.wait()?;
    println!("kvmd-demo: {sig:?}, stopping");
    drop(stack);
    Ok(())
}
