#!/usr/bin/env bash
# Installs the suite the way deploy/ lays it out, into DESTDIR (default /): binaries,
# systemd units (enabled), sysusers, tmpfiles, udev rules, reference configs, the web UI.
#   scripts/install.sh [--bin-dir target/release] [--destdir DIR] [--stage]
# --stage only lays the files out in DIR (no units enabled, no users made): the tree
# scripts/package.sh turns into the .deb, whose maintainer scripts do the rest. Existing
# configs in /etc/kvmd are kept. Creates no user and no password: after installing,
#   kvmd-htpasswd add admin
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=target/release
destdir=/
stage=
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --destdir) destdir="$2"; shift 2 ;;
        --stage) stage=1; shift ;;
        *) echo "install: unknown argument $1" >&2; exit 2 ;;
    esac
done
d="${destdir%/}"
bins=(kvmd-auth kvmd-htpasswd kvmd-apikey kvmd-totp kvmd-hid kvmd-otg kvmd-info kvmd-streamer kvmd-gpio kvmd-msd kvmd-kasm kvmd-blikvm kvmd-webrtc kvmd-nginx)
for b in "${bins[@]}"; do
    [ -x "$bin_dir/$b" ] || { echo "install: $bin_dir/$b missing (cargo build --release --workspace --bins)" >&2; exit 1; }
done
install -d "$d/usr/bin" "$d/usr/lib/systemd/system" "$d/usr/lib/sysusers.d" "$d/usr/lib/tmpfiles.d" \
    "$d/usr/lib/udev/rules.d" "$d/etc/kvmd" "$d/usr/share/kvmd/web"
for b in "${bins[@]}"; do install -m 0755 "$bin_dir/$b" "$d/usr/bin/$b"; done
install -m 0644 deploy/systemd/* "$d/usr/lib/systemd/system/"
install -m 0644 deploy/sysusers.d/kvmd.conf "$d/usr/lib/sysusers.d/kvmd.conf"
install -m 0644 deploy/tmpfiles.d/kvmd.conf "$d/usr/lib/tmpfiles.d/kvmd.conf"
install -m 0644 deploy/udev/*.rules "$d/usr/lib/udev/rules.d/"
for conf in deploy/etc/*.toml; do
    [ -e "$d/etc/kvmd/$(basename "$conf")" ] || install -m 0644 "$conf" "$d/etc/kvmd/"
done
cp -r web/. "$d/usr/share/kvmd/web/"
# Every unit of deploy/systemd is enabled (each has an [Install] section).
mapfile -t units < <(cd deploy/systemd && ls)
if [ -n "$stage" ]; then
    echo "install: files staged in ${destdir}"
    exit 0
elif [ "$d" = "" ]; then
    systemd-sysusers kvmd.conf >/dev/null 2>&1 || systemd-sysusers
    systemd-tmpfiles --create kvmd.conf
    udevadm control --reload || true
    systemctl daemon-reload
    systemctl enable "${units[@]}"
else
    systemctl --root="$d" enable "${units[@]}" >/dev/null 2>&1
fi
echo "install: suite installed into ${destdir}; add a user with: kvmd-htpasswd add admin"
