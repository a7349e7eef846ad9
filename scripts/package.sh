#!/usr/bin/env bash
# Builds the suite's Debian package from the binaries in --bin-dir:
#   scripts/package.sh [--bin-dir target/release] [--out target/debian] [--fast]
# (--fast: no compression, for the VM rig's debug builds, which xz takes minutes over)
# One package, kvmd-rs, with every service: the front's nginx config is rendered from all
# the services' route tables, and the units share users, groups and sockets, so the parts
# are only correct at the same version. The files are the ones scripts/install.sh lays
# out (one list for both ways of installing); deploy/debian holds the maintainer scripts
# (users and groups from sysusers.d, empty secrets from tmpfiles.d, units enabled; no
# password). Dependencies on shared libraries come from dpkg-shlibdeps. Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=target/release
out=target/debian
compress=-Zxz
while [ $# -gt 0 ]; do
    case "$1" in
        --fast) compress=-Znone; shift ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "package: unknown argument $1" >&2; exit 2 ;;
    esac
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/kvmd-rs"
scripts/install.sh --bin-dir "$bin_dir" --destdir "$stage" --stage > /dev/null
install -d -m 0755 "$stage/DEBIAN" "$stage/usr/share/doc/kvmd-rs"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$stage/DEBIAN/"
install -m 0644 README.md docs/SECURITY.md "$stage/usr/share/doc/kvmd-rs/"
# The reference configs are the admin's to edit: dpkg keeps their changes on upgrade.
(cd "$stage" && find etc -type f | sed 's#^#/#' | sort) > "$stage/DEBIAN/conffiles"
# Shared-library dependencies, as Debian's own packages compute them.
mkdir -p "$work/shlibs/debian"
printf 'Source: kvmd-rs\n\nPackage: kvmd-rs\nArchitecture: any\n' > "$work/shlibs/debian/control"
bins=$(find "$stage/usr/bin" -type f | sort)
# shellcheck disable=SC2086
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O $bins 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: kvmd-rs
Version: $version
Architecture: $arch
Maintainer: kvmd-rs developers <kvmd-rs@localhost>
Installed-Size: $size
Depends: ${shlibs:+$shlibs, }nginx (>= 1.22) | nginx-light | nginx-core, openssl, systemd (>= 252), udev
Recommends: ca-certificates
Section: admin
Priority: optional
Homepage: https://github.com/kvmd-rs/kvmd-rs
Description: PiKVM-compatible KVM-over-IP services
 The server side of a KVM-over-IP device: keyboard and mouse (USB OTG, CH9329),
 video (V4L2, MJPEG), virtual media (USB mass storage), ATX and GPIO, authentication (sessions, TOTP, lockout), system information
 and logs, behind an nginx front that speaks PiKVM's kvmd API. Each service is its
 own hardened systemd unit on a unix socket. A fresh install has no password:
 create a user with kvmd-htpasswd add admin.
CONTROL
mkdir -p "$out"
deb="$out/kvmd-rs_${version}_${arch}.deb"
dpkg-deb --root-owner-group "$compress" --build "$stage" "$deb" > /dev/null
echo "$deb"
