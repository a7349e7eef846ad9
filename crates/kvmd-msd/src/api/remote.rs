//! `POST /msd/write_remote`: an image downloaded from a URL into the storage, the answer a
//! stream of kvmd's NDJSON progress lines (spec `atx-msd-gpio-redfish.md` 3.8).
//!
//! Errors before the first line are kvmd's 400s, named as aiohttp names them
//! (`ClientResponseError`, `ClientConnectorError`, `ClientError`, ...). After it, a failure
//! is one more progress line and an `{"ok": false, ...}` line, and the stream ends cleanly
//! (kvmd's aiohttp then appends a plain-text 500 inside the body, which its own UI cannot
//! parse; that part is not reproduced). The download goes on when the client that started
//! it goes away: the image is still wanted, and its progress is in the `msd` event.
//!
//! Beyond kvmd: with `provider=<id>`, `url` is a file's path inside that storage provider
//! ([`crate::providers`]): under its base URL, or read from its directory.

use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use kvmd_core::ApiError;
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Flow, Param, Route, Ty};
use kvmd_core::valid;

use super::block;
use super::msd::remove_incomplete;
use super::transfer::{PREFIX, REMOVE_INCOMPLETE, WRITE_QUEUE};
use crate::msd::Msd;
use crate::transfer::{Writer, spawn_writer};

/// The group's route.
pub fn routes(api: &mut Api) {
    api.route(
        Route::post("/msd/write_remote")
            .flow(Flow::Stream)
            .doc("Downloads an image from a URL into the storage; NDJSON progress lines")
            .params(
                const {
                    &[
                        Param::req(
                            "url",
                            Ty::str(4096),
                            "An http:// or https:// URL; with `provider`, a file's path inside it",
                        ),
                        Param::opt("provider", Ty::str(32), "A storage provider's id (`/msd/providers`)"),
                        Param::opt("image", Ty::str(4096), "The new image's name (default: the remote file's)"),
                        PREFIX,
                        Param::opt("insecure", Ty::Bool, "Do not check the server's certificate"),
                        Param::opt("timeout", Ty::Float { min: Some(0.1), max: None }, "Connect timeout, seconds (10)"),
                        REMOVE_INCOMPLETE,
                    ]
                },
            )
            .answer(Answer::Stream("application/x-ndjson")),
        write_remote,
    );
}

/// kvmd's `User-Agent` (its app name is empty).
const USER_AGENT: &str = "/4.197";

fn client_error(name: &'static str, message: String) -> ApiError {
    ApiError::operation(name, message)
}

/// aiohttp's words for what went wrong fetching `url`.
fn fetch_error(e: &reqwest::Error, url: &reqwest::Url, insecure: bool) -> ApiError {
    let host = url.host_str().unwrap_or("");
    let port = url.port_or_known_default().unwrap_or(0);
    let ssl = if insecure && url.scheme() == "https" { "False" } else { "default" };
    let mut cause = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if e.is_redirect() {
        client_error("TooManyRedirects", format!("Too many redirects, url='{url}'"))
    } else if e.is_timeout() {
        client_error("ConnectionTimeoutError", format!("Connection timeout to host {url}"))
    } else if e.is_connect() {
        client_error("ClientConnectorError", format!("Cannot connect to host {host}:{port} ssl:{ssl} [{cause}]"))
    } else {
        client_error("ClientError", if cause.is_empty() { e.to_string() } else { cause })
    }
}

/// The remote file's name: `Content-Disposition`'s `filename` (or `filename*`), else the
/// URL's last path segment, percent-decoded.
fn remote_name(resp: &reqwest::Response) -> Option<String> {
    let disposition = resp.headers().get(reqwest::header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok());
    if let Some(d) = disposition {
        for part in d.split(';').map(str::trim) {
            if let Some(v) = part.strip_prefix("filename*=") {
                let v = v.split_once("''").map_or(v, |(_, n)| n);
                let n = percent_decode(v.trim_matches('"'));
                if !n.is_empty() {
                    return Some(n);
                }
            }
        }
        for part in d.split(';').map(str::trim) {
            if let Some(v) = part.strip_prefix("filename=") {
                let n = v.trim_matches('"').to_owned();
                if !n.is_empty() {
                    return Some(n);
                }
            }
        }
    }
    let last = resp.url().path_segments().and_then(|mut s| s.next_back()).unwrap_or("");
    let n = percent_decode(last);
    (!n.is_empty()).then_some(n)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn line<T: serde::Serialize>(v: &T) -> Bytes {
    let mut s = kvmd_core::json::to_compact_string(v);
    s.push_str("\r\n");
    Bytes::from(s)
}

fn progress_line(w: &crate::transfer::WriteResult) -> Bytes {
    line(&serde_json::json!({"ok": true, "result": w}))
}

fn error_line(e: &ApiError) -> Bytes {
    // `{"ok": false, "result": {"error", "error_msg"}}`, in that order.
    #[derive(serde::Serialize)]
    struct Err<'a> {
        error: &'a str,
        error_msg: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Line<'a> {
        ok: bool,
        result: Err<'a>,
    }
    line(&Line { ok: false, result: Err { error: &e.name, error_msg: &e.message } })
}

/// Where the image's bytes come from.
enum Source {
    /// A download.
    Http(reqwest::Response, reqwest::Url, bool),
    /// A file of a `local` storage provider.
    File(tokio::fs::File),
}

impl Source {
    /// The next piece, `None` at the end.
    async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        match self {
            Source::Http(resp, url, insecure) => resp.chunk().await.map_err(|e| fetch_error(&e, url, *insecure)),
            Source::File(f) => {
                use tokio::io::AsyncReadExt;
                let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
                match f.read_buf(&mut buf).await {
                    Ok(0) => Ok(None),
                    Ok(_) => Ok(Some(buf.freeze())),
                    Err(e) => Err(client_error("ClientError", e.to_string())),
                }
            }
        }
    }
}

async fn write_remote(
    msd: web::Data<Msd>,
    cfg: web::Data<crate::Config>,
    providers: web::Data<crate::providers::Providers>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = Query::of(&req);
    let from = match q.get("provider") {
        Some(id) => providers.resolve(id, q.get("url").unwrap_or(""))?,
        None => crate::providers::Source::Url(crate::name::url(q.get("url"))?),
    };
    let insecure = super::flag(&q, "insecure", false)?;
    let timeout = match q.get("timeout") {
        None => 10.0,
        Some(v) => {
            let t = valid::float(Some(v), "float", None, None)?;
            if t < 0.1 {
                return Err(ApiError::validator(format!(
                    "The argument '{}' must be float and greater or equial than 0.1",
                    kvmd_core::json::python_float_repr(t)
                )));
            }
            t
        }
    };
    let remove = remove_incomplete(&q)?;
    msd.check_enabled()?;
    let url = match from {
        crate::providers::Source::Url(u) => u,
        crate::providers::Source::File(path) => {
            let file = tokio::fs::File::open(&path).await.map_err(|e| client_error("ClientError", e.to_string()))?;
            let size = file.metadata().await.map_err(|e| client_error("ClientError", e.to_string()))?.len();
            let own = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let image = q.get("image").map_or(own, str::to_owned);
            return start(msd, crate::name::prefixed(q.get("prefix"), Some(&image))?, size, remove, Source::File(file))
                .await;
        }
    };
    let client = kvmd_core::client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs_f64(timeout.min(86400.0)))
        .redirect(reqwest::redirect::Policy::limited(cfg.remote.max_redirects))
        .tls_danger_accept_invalid_certs(insecure)
        .build()
        .map_err(|e| {
            // The one way building it fails: the system's certificate roots (for an https
            // URL checked) cannot be read.
            tracing::warn!(error = %e, "write_remote's client");
            client_error(
                "ClientError",
                "No CA certificates on this system: install ca-certificates, or use insecure=1".into(),
            )
        })?;
    let parsed = reqwest::Url::parse(&url).map_err(|_| kvmd_core::valid::invalid_error(&url, "HTTP|HTTPS URL"))?;
    let resp = client.get(parsed.clone()).send().await.map_err(|e| fetch_error(&e, &parsed, insecure))?;
    if resp.status() != reqwest::StatusCode::OK {
        let s = resp.status();
        return Err(client_error(
            "ClientResponseError",
            format!("{}, message='{}', url='{}'", s.as_u16(), s.canonical_reason().unwrap_or(""), resp.url()),
        ));
    }
    let size = resp.content_length().ok_or_else(|| client_error("ClientError", "No Content-Length found".into()))?;
    let image = match q.get("image") {
        Some(i) => i.to_owned(),
        None => remote_name(&resp).ok_or_else(|| client_error("ClientError", "Can't determine filename".into()))?,
    };
    let name = crate::name::prefixed(q.get("prefix"), Some(&image))?;
    start(msd, name, size, remove, Source::Http(resp, parsed, insecure)).await
}

/// Writes `size` bytes from `source` into image `name`, answering with the progress lines.
async fn start(
    msd: web::Data<Msd>,
    name: String,
    size: u64,
    remove: bool,
    mut source: Source,
) -> Result<HttpResponse, ApiError> {
    let msd = msd.into_inner();
    let writer = block(move || Writer::begin(&msd, name, size, remove)).await?;
    // Unbounded: at most a line a second, and a client that stops reading never stalls the download.
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        // The client may be gone: its lines are then dropped, the download goes on.
        let say = |b: Bytes| {
            let _ = out_tx.send(b);
        };
        say(progress_line(&writer.progress()));
        let written = writer.progress();
        let (tx, done) = spawn_writer(writer, WRITE_QUEUE);
        let mut last = written;
        let mut fetched = 0u64;
        let mut first = true;
        let mut said = Instant::now();
        let mut failed = None;
        loop {
            match source.chunk().await {
                Ok(Some(chunk)) => {
                    fetched += chunk.len() as u64;
                    if tx.send(chunk).await.is_err() {
                        break; // the writer failed: its error comes below
                    }
                    last.image.written = fetched;
                    if first || said.elapsed() >= Duration::from_secs(1) {
                        say(progress_line(&last));
                        first = false;
                        said = Instant::now();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let result = done.await.map_err(ApiError::internal).and_then(|r| r);
        match (result, failed) {
            (Ok(w), None) if w.image.written >= w.image.size => say(progress_line(&w)),
            (Ok(w), None) => {
                say(progress_line(&w));
                say(error_line(&client_error("ClientPayloadError", "Response payload is not completed".into())));
            }
            (Ok(w), Some(e)) => {
                say(progress_line(&w));
                say(error_line(&e));
            }
            (Err(e), _) => {
                say(progress_line(&last));
                say(error_line(&e));
            }
        }
    });
    let stream = futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson")))
        .streaming(stream))
}
