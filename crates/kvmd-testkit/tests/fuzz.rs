//! Property: no request, however malformed, makes a service panic or answer a 5xx other
//! than kvmd's 503 (issue #15's bad-input list). Each case is one request to one declared
//! route of one service, in-process: its parameters drawn from hostile values for their
//! types (NaN, infinities, overflowing integers, control bytes, boundary lengths, the
//! range's edges and one past them) or from arbitrary text, its body arbitrary bytes under
//! arbitrary charsets, its method sometimes wrong. `just fuzz` runs many cases; the normal
//! test run a few hundred.

use kvmd_core::routes::{Body, Expose, Param, Route, Ty};
use kvmd_testkit::service::{self, App, TestService};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// Values that broke validators before, or might: non-finite and overflowing numbers,
/// control bytes, odd spellings.
const HOSTILE: &[&str] = &[
    "nan",
    "NaN",
    "inf",
    "-inf",
    "infinity",
    "1e309",
    "-1e309",
    "-0",
    "0x10",
    "1_000",
    "9223372036855",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e18",
    "-1",
    "",
    " ",
    "\0",
    "\r\n",
    "\u{7f}",
    "ß",
    "\u{202e}",
    "true",
    "yes",
    "2",
    "0.0000001",
    ",,,",
    "None",
];

/// One parameter of a case: whether it is sent, how its value is chosen, and the
/// arbitrary text for the `Free` kind.
type ParamDraw = (bool, u8, String);

/// One request: the route (an index into every service's routes), a wrong method or not,
/// parameter draws, one extra unknown parameter, and a body with a content-type choice.
type Case = (usize, usize, u8, Vec<ParamDraw>, Option<String>, Vec<u8>, u8);

fn case() -> impl Strategy<Value = Case> {
    (
        0usize..6,
        any::<usize>(),
        any::<u8>(),
        proptest::collection::vec((any::<bool>(), any::<u8>(), ".{0,40}"), 0..10),
        proptest::option::of("[a-z_]{1,12}"),
        proptest::collection::vec(any::<u8>(), 0..4),
        any::<u8>(),
    )
}

/// A value for a parameter of type `ty`, chosen by `kind`: hostile, arbitrary, or at or
/// just past the edges of what the type accepts. Never a long valid float (a print's
/// `delay` of 5 s per key would make the case slow without testing more).
fn value(ty: &Ty, kind: u8, free: &str) -> String {
    let pick = |n: usize| usize::from(kind / 3) % n;
    match kind % 3 {
        0 => HOSTILE[pick(HOSTILE.len())].to_owned(),
        1 => free.to_owned(),
        _ => match *ty {
            Ty::Bool => ["1", "0", "TRUE", "off", "10"][pick(5)].to_owned(),
            Ty::Int { min, max, .. } => {
                let (lo, hi) = (min.unwrap_or(i64::MIN), max.unwrap_or(i64::MAX));
                [lo.to_string(), hi.to_string(), (i128::from(lo) - 1).to_string(), (i128::from(hi) + 1).to_string()]
                    [pick(4)]
                .clone()
            }
            Ty::Float { min, .. } => {
                let lo = min.unwrap_or(0.0);
                [lo.to_string(), (lo - 1e-9).to_string(), format!("{lo}e0")][pick(3)].clone()
            }
            Ty::Str { max_len, .. } => {
                let n = usize::try_from(max_len.unwrap_or(64)).unwrap_or(64);
                ["a".repeat(n), "a".repeat(n + 1), format!(" {free} ")][pick(3)].clone()
            }
            Ty::Enum(items) | Ty::List(items) if !items.is_empty() => {
                let item = items[pick(items.len())];
                [item.to_owned(), item.to_uppercase(), format!(" {item} "), items.join(","), format!("{item},x")]
                    [pick(5)]
                .clone()
            }
            Ty::Enum(_) | Ty::List(_) => free.to_owned(),
        },
    }
}

/// Percent-encodes every byte but ASCII letters and digits.
fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }).collect()
}

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("text/plain"),
    Some("text/plain; charset=latin-1"),
    Some("text/plain; charset=utf-16"),
    Some("text/plain; charset=\"ISO-8859-1\""),
    Some("text/plain; charset=no-such"),
    Some("text/plain; charset="),
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("multipart/form-data; boundary="),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

/// The request of `case` on `route`: method, path with query, content type and body.
fn request(route: &Route, case: &Case) -> (String, String, Option<&'static str>, Vec<u8>) {
    let (_, _, method_draw, draws, extra, body, ct) = case;
    let method = if method_draw % 10 == 0 {
        METHODS[usize::from(*method_draw / 10) % METHODS.len()]
    } else {
        route.method.as_str()
    };
    let form: &[Param] = match route.body {
        Body::Form(f) => f,
        _ => &[],
    };
    let mut pairs: Vec<String> = route
        .params
        .iter()
        .chain(form)
        .zip(draws)
        .filter(|(_, (send, _, _))| *send)
        .map(|(p, (_, kind, free))| format!("{}={}", p.name, encode(&value(&p.ty, *kind, free))))
        .collect();
    if let Some(name) = extra {
        pairs.push(format!("{name}=1"));
    }
    let query = pairs.join("&");
    let path = service::instance(route.path);
    let (path, body, ct) = match route.body {
        // A form goes in the body (kvmd reads both).
        Body::Form(_) => (path, query.into_bytes(), Some("application/x-www-form-urlencoded")),
        Body::Raw(_) => (format!("{path}?{query}"), body.clone(), CONTENT_TYPES[usize::from(*ct) % 10]),
        Body::None => (format!("{path}?{query}"), Vec::new(), None),
    };
    (method.to_owned(), path, ct, body)
}

/// Sends `case` to `svc`; returns the failure, if any.
async fn run<S: App>(svc: &TestService<S>, case: &Case) -> Result<(), String> {
    let routes = &svc.table.routes;
    let route = &routes[case.1 % routes.len()];
    let (method, path, ct, body) = request(route, case);
    let a = svc.send(&method, &path, true, ct, body).await;
    let code = a.status.as_u16();
    // uStreamer answers a method it lacks with 501, as the spec says.
    let ustreamer_501 = code == 501 && matches!(route.expose, Expose::Mount(_)) && method != route.method.as_str();
    let kvmd_503 = code == 503 && !a.body.is_empty();
    if code >= 500 && !kvmd_503 && !ustreamer_501 {
        return Err(format!("{} {method} {path} ({ct:?}): {code} {}", svc.table.service, a.body));
    }
    Ok(())
}

#[test]
fn routes_never_panic_never_5xx() {
    // PROPTEST_CASES from the environment (`just fuzz`), a few hundred otherwise. A snapshot
    // with the capture off waits for its first frame (1-2 s), so a fuzz run is capped at
    // 5 000 requests (about a minute).
    let config = Config { cases: Config::default().cases.min(5_000), ..Config::default() };
    let mut runner = TestRunner::new(config.clone());
    let strategy = case();
    actix_web::rt::System::new().block_on(async move {
        let (auth, hid, info, streamer, gpio, msd) = (
            service::auth().await,
            service::hid().await,
            service::info().await,
            service::streamer().await,
            service::gpio().await,
            service::msd().await,
        );
        let mut failures = Vec::new();
        for _ in 0..config.cases {
            let case = strategy.new_tree(&mut runner).unwrap_or_else(|e| panic!("{e}")).current();
            let r = match case.0 {
                0 => run(&auth, &case).await,
                1 => run(&hid, &case).await,
                2 => run(&info, &case).await,
                3 => run(&streamer, &case).await,
                4 => run(&gpio, &case).await,
                _ => run(&msd, &case).await,
            };
            if let Err(e) = r {
                failures.push(e);
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} requests failed:\n{}",
            failures.len(),
            config.cases,
            failures.join("\n")
        );
    });
}
