//! Everything the kvmd-rs services share, so that no service formats the wire itself.
//!
//! kvmd (PiKVM's daemon) is one aiohttp process; kvmd-rs splits it into one process per
//! subsystem. Every one of them must answer byte for byte like kvmd, so the wire format,
//! the error table, the validators and their exact messages, the route table and the
//! service lifecycle live here, once.
//!
//! # Layout
//! - [`json`]: kvmd's JSON serialisation (Python `json.dumps(sort_keys=True, indent=4)`,
//!   ASCII-escaped, Python float repr) and the compact WebSocket form.
//! - [`error`]: the one error type, [`ApiError`], and the table of kvmd's error names.
//! - [`envelope`]: the `{"ok": ..., "result": ...}` responder and kvmd's plain-text answers.
//! - [`metrics`]: request counts and latencies of this process, for the Prometheus export.
//! - [`valid`]: argument validators with kvmd's exact messages.
//! - [`routes`]: the one declaration of every route (method, path, access, proxy flow,
//!   parameters, handler), from which each service's actix app, the nginx front and the
//!   OpenAPI document are made; the actix 404/405/308 handlers read it.
//! - [`openapi`]: the OpenAPI 3.1 document generated from those declarations.
//! - [`role`]: viewer, operator, admin: what a user may do and what a route needs.
//! - [`authn`]: credential header and cookie names, credential parsing in kvmd's order, and
//!   the [`authn::Authed`] extractor services use.
//! - [`query`]: query-string arguments as kvmd reads them (first of duplicates wins).
//! - [`net`]: unix-socket listeners (socket activation first), peer credentials, and which
//!   peer is the front.
//! - [`limit`]: caps on sessions, clients and bodies in flight (kvmd's 503 when full).
//! - [`config`]: typed, layered configuration (defaults < file < environment < command line).
//! - [`telemetry`]: tracing set-up (journald when stderr is a journal stream, else stderr).
//! - [`service`]: the process lifecycle: runtime, signals, sd_notify, the HTTP server.
//! - [`redfish`]: the Redfish routes' documents, 204s and errors.
//! - [`client`]: HTTP clients (between services, and out), TLS provider installed.
//! - [`usb`]: facts of the USB gadget (inquiry strings) that two services share.
//! - [`feed`]: reading the internal state feeds between services, and their line format.
//! - [`h264feed`]: the framing of kvmd-streamer's H.264 feed (kvmd-webrtc reads it).

pub mod authn;
pub mod client;
pub mod config;
pub mod envelope;
pub mod error;
pub mod feed;
pub mod fs;
pub mod h264feed;
pub mod json;
pub mod limit;
pub mod metrics;
pub mod net;
pub mod openapi;
pub mod query;
pub mod redfish;
pub mod role;
pub mod routes;
pub mod service;
pub mod telemetry;
pub mod usb;
pub mod valid;

pub use envelope::{ApiResponse, ApiResult};
pub use error::ApiError;
