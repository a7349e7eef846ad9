//! kvmd-msd through the real nginx (issue #17): an image uploaded, listed, read back (as
//! stored, and XZ and Zstandard decoded), attached to the virtual target's drive, ejected
//! and removed; cut uploads, busy and full-storage errors; `write_remote` from a local
//! server; Redfish's VirtualMedia; the `msd` events on `/api/ws`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, get, text};

const CREDS: [&str; 4] = ["-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"];

fn post(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec!["-X", "POST"];
    v.extend(CREDS);
    v.extend(extra);
    v
}

/// `n` bytes that differ from position to position (an LCG), so a misplaced chunk shows.
fn image_bytes(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

fn state(stack: &kvmd_testkit::Stack) -> serde_json::Value {
    let r = get(stack, "/api/msd", &CREDS);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", text(&r)));
    v["result"].clone()
}

fn upload(stack: &kvmd_testkit::Stack, query: &str, file: &std::path::Path) -> kvmd_testkit::golden::Response {
    let data = format!("@{}", file.display());
    let path = format!("/api/msd/write?{query}");
    // No `Expect: 100-continue` (curl's for big bodies): one answer to parse.
    let mut args: Vec<&str> = post(&["-H", "Content-Type: application/octet-stream", "-H", "Expect:"]);
    args.push("--data-binary");
    args.push(&data);
    get(stack, &path, &args)
}

/// Waits (bounded) until the state satisfies `want`.
fn wait_state(stack: &kvmd_testkit::Stack, what: &str, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = state(stack);
        if want(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_image_goes_up_reads_back_attaches_ejects_and_goes_away() {
    let stack = common::stack();
    let s = state(&stack);
    assert_eq!(
        (s["enabled"].as_bool(), s["online"].as_bool(), s["busy"].as_bool()),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(s["storage"]["images"], serde_json::json!({}));
    assert_eq!(s["storage"]["parts"][""]["writable"], true);
    // kvmd-otg's drive: an empty, read-only CD-ROM.
    assert_eq!(s["drive"], serde_json::json!({"image": null, "connected": false, "cdrom": true, "rw": false}));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bytes = image_bytes(3 * 1024 * 1024 + 123);
    let file = dir.path().join("disk.img");
    std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let r = upload(&stack, "image=disk.img&remove_incomplete=1", &file);
    assert_eq!(r.status(), 200, "{}", text(&r));
    let want = format!(
        "{{\n    \"ok\": true,\n    \"result\": {{\n        \"image\": {{\n            \"name\": \"disk.img\",\n            \"size\": {n},\n            \"written\": {n}\n        }}\n    }}\n}}",
        n = bytes.len()
    );
    assert_eq!(text(&r), want);
    let s = state(&stack);
    let img = &s["storage"]["images"]["disk.img"];
    assert_eq!(
        (img["complete"].as_bool(), img["writable"].as_bool(), img["removable"].as_bool()),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(img["size"].as_u64(), Some(bytes.len() as u64));
    assert!(img["mod_ts"].is_f64(), "{img}");
    // The same over HTTP/2 (browsers upload so): nginx passes the body on, unbuffered.
    let args: Vec<String> = ["--http2", "-X", "POST", "-H", "X-KVMD-User: admin", "-H", "X-KVMD-Passwd: admin"]
        .into_iter()
        .map(String::from)
        .chain(["--data-binary".into(), format!("@{}", file.display()), stack.url("/api/msd/write?image=h2.img")])
        .collect();
    let out = String::from_utf8_lossy(&kvmd_testkit::curl(&args).unwrap_or_default()).into_owned();
    assert!(out.contains(&format!("\"written\": {}", bytes.len())), "HTTP/2 upload: {out}");
    assert_eq!(get(&stack, "/api/msd/remove?image=h2.img", &post(&[])).status(), 200);
    // Nothing but the image: the marker it was written into is gone.
    let names: Vec<String> = std::fs::read_dir(stack.root.join("var/msd"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["disk.img"]);

    // Read back: as stored (with its length), then decoded from XZ and Zstandard.
    let r = get(&stack, "/api/msd/read?image=disk.img", &CREDS);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-disposition"), Some("attachment; filename*=UTF-8''disk.img"));
    assert_eq!(r.header("content-length"), Some(bytes.len().to_string().as_str()));
    assert!(r.body == bytes, "the download differs from the upload");
    let r = get(&stack, "/api/msd/read?image=disk.img&compress=zstd", &CREDS);
    assert_eq!(r.header("content-disposition"), Some("attachment; filename*=UTF-8''disk.img.zst"));
    let decoded = zstd::stream::decode_all(&r.body[..]).unwrap_or_else(|e| panic!("zstd: {e}"));
    assert!(decoded == bytes, "the zstd download differs");
    let r = get(&stack, "/api/msd/read?image=disk.img&compress=LZMA", &CREDS);
    assert_eq!(r.header("content-disposition"), Some("attachment; filename*=UTF-8''disk.img.xz"));
    let mut decoded = Vec::new();
    liblzma::read::XzDecoder::new(&r.body[..]).read_to_end(&mut decoded).unwrap_or_else(|e| panic!("xz: {e}"));
    assert!(decoded == bytes, "the xz download differs");

    // kvmd's errors: the same name again, bad names, a URL as the image, an unknown image.
    let r = upload(&stack, "image=disk.img", &file);
    assert!(r.status() == 400 && text(&r).contains("MsdImageExistsError"), "{}", text(&r));
    common::expect_400(
        &stack,
        &common::cookie(&stack),
        "POST",
        &[
            ("/api/msd/set_params?image=../etc/passwd", "The argument '..' is not a valid MSD image name"),
            ("/api/msd/set_params?image=http://host/x.iso", "Remote images binding is disabled"),
            ("/api/msd/set_params?image=nope.iso", "The image is not found in the storage"),
            ("/api/msd/set_connected", "None argument is not a valid bool"),
            ("/api/msd/set_connected?connected=1", "The image is not selected"),
            ("/api/msd/set_connected?connected=0", "MSD is disconnected from Server, but should be for this operation"),
            ("/api/msd/remove", "None argument is not a valid stripped string"),
        ],
    );
    let r = get(&stack, "/api/msd/read?image=x&compress=gzip", &CREDS);
    assert!(
        r.status() == 400 && text(&r).contains("The argument 'gzip' is not a valid Compression mode"),
        "{}",
        text(&r)
    );

    // Select read-write, attach: the target's drive holds it and its screen says so.
    assert_eq!(get(&stack, "/api/msd/set_params?image=disk.img&cdrom=0&rw=1", &post(&[])).status(), 200);
    let r = get(&stack, "/api/msd/set_connected?connected=1", &post(&[]));
    assert_eq!(r.status(), 200, "{}", text(&r));
    let s = state(&stack);
    assert_eq!(
        (s["drive"]["connected"].as_bool(), s["drive"]["rw"].as_bool(), s["drive"]["cdrom"].as_bool()),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(s["drive"]["image"]["name"], "disk.img");
    assert_eq!(s["drive"]["image"]["in_storage"], true);
    let medium = std::fs::read_to_string(stack.root.join("run/vtarget-medium")).unwrap_or_default();
    assert_eq!(medium, format!("disk.img\t{}\t0\t1\n", bytes.len()));
    // Nothing changes while connected.
    for (path, msg) in [
        ("/api/msd/remove?image=disk.img", "MsdConnectedError"),
        ("/api/msd/set_params?cdrom=1", "MsdConnectedError"),
        ("/api/msd/set_connected?connected=1", "MsdConnectedError"),
    ] {
        let r = get(&stack, path, &post(&[]));
        assert!(r.status() == 400 && text(&r).contains(msg), "{path}: {}", text(&r));
    }
    let r = get(&stack, "/api/msd/read?image=disk.img", &CREDS);
    assert!(r.status() == 400 && text(&r).contains("MsdConnectedError"), "{}", text(&r));

    // Eject; CD-ROM mode clears rw (kvmd's silent rule); remove: nothing is left.
    assert_eq!(get(&stack, "/api/msd/set_connected?connected=0", &post(&[])).status(), 200);
    assert_eq!(std::fs::read_to_string(stack.root.join("run/vtarget-medium")).unwrap_or_default(), "");
    assert_eq!(get(&stack, "/api/msd/set_params?cdrom=1", &post(&[])).status(), 200);
    let s = state(&stack);
    assert_eq!(
        (s["drive"]["cdrom"].as_bool(), s["drive"]["rw"].as_bool(), s["drive"]["connected"].as_bool()),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(get(&stack, "/api/msd/remove?image=disk.img", &post(&[])).status(), 200);
    let s = state(&stack);
    assert_eq!(s["storage"]["images"], serde_json::json!({}));
    assert_eq!(s["drive"]["image"], serde_json::Value::Null, "the removed image is unselected");
    assert_eq!(get(&stack, "/api/msd/reset", &post(&[])).status(), 200);

    // Without credentials: kvmd's 401 on every route.
    assert_eq!(get(&stack, "/api/msd", &[]).status(), 401);
    assert_eq!(get(&stack, "/api/msd/write?image=x", &["-X", "POST", "--data-binary", "abc"]).status(), 401);
}

/// An upload whose client goes away (curl killed mid-body, through nginx): the image shows
/// as incomplete, never complete; with `remove_incomplete` nothing is left. While one
/// runs, another is kvmd's 409; a body larger than the free space is refused at once.
#[test]
fn a_cut_upload_is_never_complete_and_busy_and_full_are_refused() {
    let stack = common::stack();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("big.img");
    std::fs::write(&file, image_bytes(16 * 1024 * 1024)).unwrap_or_else(|e| panic!("{e}"));
    for (query, kept) in [("image=cut.img", true), ("image=gone.img&remove_incomplete=1", false)] {
        let url = stack.url(&format!("/api/msd/write?{query}"));
        let mut curl = Command::new("curl")
            .args(["-sk", "--http1.1", "--limit-rate", "512k", "-X", "POST"])
            .args(CREDS)
            .args(["-H", "Content-Type: application/octet-stream", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(&url)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        let s =
            wait_state(&stack, "an upload running", |s| s["storage"]["uploading"]["written"].as_u64().unwrap_or(0) > 0);
        assert_eq!(s["busy"], true);
        let name = query.split('&').next().unwrap_or("").trim_start_matches("image=");
        assert_eq!(s["storage"]["uploading"]["name"], name);
        assert_eq!(s["storage"]["images"][name]["complete"], false, "{s}");
        // A second operation meanwhile: kvmd's busy error.
        let small = dir.path().join("small.img");
        std::fs::write(&small, b"tiny").unwrap_or_else(|e| panic!("{e}"));
        let r = upload(&stack, "image=other.img", &small);
        assert_eq!(r.status(), 409, "{}", text(&r));
        assert!(text(&r).contains("Performing another MSD operation, please try again later"), "{}", text(&r));
        let _ = curl.kill();
        let _ = curl.wait();
        let s = wait_state(&stack, "the upload's end", |s| s["busy"] == false);
        assert_eq!(s["storage"]["uploading"], serde_json::Value::Null);
        let img = &s["storage"]["images"][name];
        if kept {
            assert_eq!(img["complete"], false, "{s}");
            assert!(!stack.root.join("var/msd").join(name).exists(), "no file under the image's own name");
        } else {
            assert!(img.is_null(), "{s}");
        }
    }
    // The kept incomplete image can be removed; the storage keeps serving.
    assert_eq!(get(&stack, "/api/msd/remove?image=cut.img", &post(&[])).status(), 200);
    let small = dir.path().join("small.img");
    assert_eq!(upload(&stack, "image=small.img", &small).status(), 200);
    // A body announced larger than the free space: refused before it is read.
    let r = get(
        &stack,
        "/api/msd/write?image=huge.iso",
        &post(&["-H", "Content-Length: 999999999999999", "--data-binary", "x"]),
    );
    assert!(r.status() == 400 && text(&r).contains("Not enough free space in the storage"), "{}", text(&r));
    assert!(state(&stack)["storage"]["images"]["huge.iso"].is_null());
}

/// One HTTP/1.1 answer per connection from a local server: `routes` maps a path to
/// (status line, headers, body).
fn serve(routes: Vec<(&'static str, String, Vec<u8>)>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
            let path = line.split(' ').nth(1).unwrap_or("");
            let (status, headers, body) = routes
                .iter()
                .find(|(p, ..)| *p == path)
                .map_or(("404 Not Found", String::new(), Vec::new()), |(_, h, b)| ("200 OK", h.clone(), b.clone()));
            let status = if headers.starts_with("Location:") { "302 Found" } else { status };
            let _ =
                write!(c, "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = c.write_all(&body);
        }
    });
    port
}

#[test]
fn write_remote_streams_kvmds_progress_lines_and_names_aiohttps_errors() {
    let stack = common::stack();
    let bytes = image_bytes(2 * 1024 * 1024 + 7);
    let port = serve(vec![
        ("/files/remote.img", String::new(), bytes.clone()),
        ("/named", "Content-Disposition: attachment; filename=\"named.iso\"\r\n".into(), b"iso".to_vec()),
        ("/loop", "Location: /loop\r\n".into(), Vec::new()),
    ]);
    let r = get(&stack, &format!("/api/msd/write_remote?url=http://127.0.0.1:{port}/files/remote.img"), &post(&[]));
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let body = text(&r);
    let lines: Vec<&str> = body.split_terminator("\r\n").collect();
    let n = bytes.len();
    assert_eq!(lines.first().copied(), Some(format!("{{\"ok\": true, \"result\": {{\"image\": {{\"name\": \"remote.img\", \"size\": {n}, \"written\": 0}}}}}}").as_str()));
    assert_eq!(lines.last().copied(), Some(format!("{{\"ok\": true, \"result\": {{\"image\": {{\"name\": \"remote.img\", \"size\": {n}, \"written\": {n}}}}}}}").as_str()));
    assert!(lines.len() >= 3, "{body}");
    let r = get(&stack, "/api/msd/read?image=remote.img", &CREDS);
    assert!(r.body == bytes, "the downloaded image differs");
    // The name from Content-Disposition, under a prefix that exists.
    std::fs::create_dir_all(stack.root.join("var/msd/isos")).unwrap_or_else(|e| panic!("{e}"));
    let r = get(&stack, &format!("/api/msd/write_remote?prefix=isos&url=http://127.0.0.1:{port}/named"), &post(&[]));
    assert!(text(&r).contains("\"name\": \"isos/named.iso\""), "{}", text(&r));
    let s = state(&stack);
    assert_eq!(s["storage"]["images"]["isos/named.iso"]["writable"], false, "an ISO is never writable");
    // Failures before any line: 400 with aiohttp's class names.
    for (url, error) in [
        (format!("http://127.0.0.1:{port}/missing.iso"), "ClientResponseError"),
        ("http://127.0.0.1:1/x.iso".to_owned(), "ClientConnectorError"),
        (format!("http://127.0.0.1:{port}/loop"), "TooManyRedirects"),
    ] {
        let r = get(&stack, &format!("/api/msd/write_remote?url={url}"), &post(&[]));
        assert!(r.status() == 400 && text(&r).contains(error), "{url}: {}", text(&r));
    }
    let r = get(&stack, "/api/msd/write_remote?url=ftp://x/y.iso", &post(&[]));
    assert!(text(&r).contains("The argument 'ftp://x/y.iso' is not a valid HTTP|HTTPS URL"), "{}", text(&r));
    let r = get(&stack, &format!("/api/msd/write_remote?url=http://127.0.0.1:{port}/named&timeout=0.0"), &post(&[]));
    assert!(text(&r).contains("The argument '0.0' must be float and greater or equial than 0.1"), "{}", text(&r));
    let s = state(&stack);
    assert_eq!(s["busy"], false, "{s}");
    assert_eq!(s["storage"]["images"].as_object().map(|m| m.len()), Some(2), "{s}");
}

#[test]
fn redfish_virtual_media_attaches_in_flash_mode_and_ejects() {
    let stack = common::stack();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("boot.img");
    std::fs::write(&file, image_bytes(4096)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(upload(&stack, "image=boot.img", &file).status(), 200);
    let r = get(&stack, "/redfish/v1/Managers/BMC/VirtualMedia", &CREDS);
    assert!(r.status() == 200 && text(&r).contains("/redfish/v1/Managers/BMC/VirtualMedia/MSD"), "{}", text(&r));
    let doc = |stack: &kvmd_testkit::Stack| -> serde_json::Value {
        let r = get(stack, "/redfish/v1/Managers/BMC/VirtualMedia/MSD", &CREDS);
        assert_eq!(r.status(), 200, "{}", text(&r));
        serde_json::from_slice(&r.body).unwrap_or_default()
    };
    let d = doc(&stack);
    assert_eq!(
        (d["ConnectedVia"].as_str(), d["Inserted"].as_bool(), d["Image"].as_str()),
        (Some("NotConnected"), Some(false), None)
    );
    assert_eq!(d["Oem"]["PiKVM"]["MsdOnline"], true);
    let r = get(
        &stack,
        "/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.InsertMedia",
        &post(&["-H", "Content-Type: application/json", "-d", r#"{"Image": "boot.img", "TransferMethod": "Stream"}"#]),
    );
    assert_eq!((r.status(), r.body.len()), (204, 0), "{}", text(&r));
    let d = doc(&stack);
    assert_eq!(
        (d["Image"].as_str(), d["ImageName"].as_str(), d["Inserted"].as_bool()),
        (Some("boot.img"), Some("boot.img"), Some(true))
    );
    // Flash mode, write-protected by default; kvmd's WriteProtected is the drive's rw (sic).
    assert_eq!(
        (d["Oem"]["PiKVM"]["DriveOptical"].as_bool(), d["WriteProtected"].as_bool()),
        (Some(false), Some(false))
    );
    let r = get(
        &stack,
        "/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.InsertMedia",
        &post(&["-d", "nope"]),
    );
    assert!(r.status() == 400 && text(&r).contains("Invalid body"), "{}", text(&r));
    let r = get(&stack, "/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.EjectMedia", &post(&[]));
    assert_eq!(r.status(), 204, "{}", text(&r));
    let d = doc(&stack);
    assert_eq!((d["Inserted"].as_bool(), d["Image"].as_str()), (Some(false), None));
    let r = get(&stack, "/redfish/v1/Managers/BMC/VirtualMedia/MSD/Actions/VirtualMedia.EjectMedia", &post(&[]));
    assert!(r.status() == 400 && text(&r).contains("MsdDisconnectedError"), "{}", text(&r));
}

#[test]
fn disabled_msd_is_kvmds_disabled_state_and_error() {
    let opts = kvmd_testkit::StackOptions { msd_set: vec!["msd.type=\"disabled\"".into()], ..Default::default() };
    let stack = kvmd_testkit::Stack::start(opts).unwrap_or_else(|e| panic!("{e:#}"));
    let r = get(&stack, "/api/msd", &CREDS);
    assert_eq!((r.status(), r.body.len()), (200, 162), "{}", text(&r));
    assert!(text(&r).contains("\"enabled\": false"), "{}", text(&r));
    let r = get(&stack, "/api/msd/set_connected?connected=1", &post(&[]));
    assert!(r.status() == 400 && text(&r).contains("MSD is disabled"), "{}", text(&r));
}

/// The `msd` part of `/api/ws`: the full state in the burst, then kvmd's partial events.
#[test]
fn msd_events_reach_the_websocket() {
    use crate::ws::{connect_with, until_where};
    let stack = common::stack();
    let token = common::login(&stack, "admin", "admin");
    let mut ws = connect_with(&stack, &token, "0");
    until_where(&mut ws, "the enabled msd state", |t| {
        t.starts_with(r#"{"event_type": "msd", "event": {"enabled": true, "online": true, "busy": false, "storage": {"images": {}, "parts": {"": {"size": "#)
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("a.img");
    std::fs::write(&file, image_bytes(1000)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(upload(&stack, "image=a.img", &file).status(), 200);
    // (With `busy` before it when the upload's start and end fall into one look.)
    until_where(&mut ws, "the new image in a partial event", |t| {
        t.starts_with(r#"{"event_type": "msd", "event": {"#)
            && !t.contains(r#""enabled""#)
            && t.contains(r#""storage": {"images": {"a.img": {"complete": true, "removable": true, "writable": true, "size": 1000, "mod_ts": "#)
    });
    assert_eq!(get(&stack, "/api/msd/set_params?image=a.img", &post(&[])).status(), 200);
    // The drive part, first unless the upload's last `busy` change falls into the same look
    // (a partial event carries every changed part, `busy` before `drive`: spec 3.3).
    until_where(&mut ws, "the selected image in a partial event", |t| {
        t.starts_with(r#"{"event_type": "msd", "event": {"#)
            && !t.contains(r#""enabled""#)
            && t.contains(r#""drive": {"image": {"name": "a.img", "in_storage": true, "#)
    });
}

/// The suite's storage providers (issue #18): an http provider made through
/// `/api/msd/providers/create` gives `write_remote?provider=<id>&url=<file>` its base URL; a
/// viewer may not list them, an operator may not add one.
#[test]
fn write_remote_takes_a_file_of_a_storage_provider() {
    let mut opts = kvmd_testkit::StackOptions::default();
    for (name, role) in [("op", "operator"), ("vic", "viewer")] {
        opts.htpasswd.push(format!("{name}:{}", kvmd_auth::hash::make_ssha512(name)));
        opts.auth_set.push(format!("roles.{name}=\"{role}\""));
    }
    let stack = kvmd_testkit::Stack::start(opts).unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"));
    let bytes = image_bytes(300_001);
    let port = serve(vec![("/mirror/sub%20dir/os.img", String::new(), bytes.clone())]);
    let r = get(
        &stack,
        &format!("/api/msd/providers/create?type=http&url=http://127.0.0.1:{port}/mirror&name=mirror"),
        &post(&[]),
    );
    assert_eq!(r.status(), 200, "{}", text(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let p = &v["result"]["provider"];
    assert_eq!(
        (&p["type"], &p["url"]),
        (&serde_json::json!("http"), &serde_json::json!(format!("http://127.0.0.1:{port}/mirror/"))),
        "{v}"
    );
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let r =
        get(&stack, &format!("/api/msd/write_remote?provider={id}&url=sub dir/os.img").replace(' ', "%20"), &post(&[]));
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert!(text(&r).trim_end().ends_with(&format!("\"written\": {}}}}}}}", bytes.len())), "{}", text(&r));
    let r = get(&stack, "/api/msd/read?image=os.img", &CREDS);
    assert!(r.body == bytes, "the image differs");
    // Roles: the list is an operator's, adding one an admin's.
    let op = ["-H", "X-KVMD-User: op", "-H", "X-KVMD-Passwd: op"];
    let vic = ["-H", "X-KVMD-User: vic", "-H", "X-KVMD-Passwd: vic"];
    assert_eq!(get(&stack, "/api/msd/providers", &op).status(), 200);
    assert_eq!(get(&stack, "/api/msd/providers", &vic).status(), 403);
    let r = get(&stack, "/api/msd/providers/create?type=http&url=http://x/", &[&["-X", "POST"][..], &op].concat());
    assert_eq!(r.status(), 403);
    // Bad input: kvmd's 400s.
    for q in ["type=smb&url=http://x/", "type=http", "type=http&url=http://u:p@x/", "type=local&path=relative"] {
        let r = get(&stack, &format!("/api/msd/providers/create?{q}"), &post(&[]));
        assert_eq!(r.status(), 400, "{q}: {}", text(&r));
    }
}
