#!/usr/bin/env bash
# Installs what building, testing and running the suite need, when it is missing.
# Safe to run again: it only installs what is absent. Debian 12 (bookworm).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || pkgs+=("$2"); }
need nginx nginx
need curl curl
need openssl openssl
need wrk wrk
need nasm nasm
need pkg-config pkg-config
need cc build-essential
need systemd-analyze systemd
need python3 python3
need setpriv util-linux
need pgrep procps
need modprobe kmod
need dpkg-deb dpkg
need dpkg-shlibdeps dpkg-dev
need chromium chromium
need chromedriver chromium-driver
[ -x /lib/systemd/systemd-journal-remote ] || pkgs+=(systemd-journal-remote)
[ -e /usr/include/xkbcommon/xkbcommon.h ] || pkgs+=(libxkbcommon-dev)
[ -d /usr/share/X11/xkb/symbols ] || pkgs+=(xkb-data)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || pkgs+=(libclang-dev)
[ -e "/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/libcrypt.so" ] || pkgs+=(libcrypt-dev)

if [ "${#pkgs[@]}" -gt 0 ]; then
    echo "setup: installing ${pkgs[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"
if ! command -v just >/dev/null 2>&1; then
    echo "setup: installing just" >&2
    # PyPI's rust-just ships the just binary (fast); cargo builds it otherwise.
    python3 -m pip install --quiet --user rust-just 2>/dev/null \
        || python3 -m pip install --quiet --user --break-system-packages rust-just 2>/dev/null \
        || cargo install --locked just
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi
