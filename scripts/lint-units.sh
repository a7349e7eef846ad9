#!/usr/bin/env bash
# Checks the systemd units of deploy/ with systemd's own tools:
#   systemd-analyze verify          (syntax, references, executables)
#   systemd-analyze security        (exposure score of each service; fails above the limit, or
#                                    when docs/SECURITY.md states another figure)
#   deploy/etc/*.toml               (each reference config loads in its service)
# verify needs the ExecStart binaries to exist, so it checks copies of the units whose
# paths point at the freshly built binaries.
set -euo pipefail
bin_dir="${1:-target/debug}"
max_exposure="${MAX_EXPOSURE:-2.0}"
bin_dir="$(cd "$bin_dir" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for unit in deploy/systemd/*; do
    sed -e "s#/usr/bin/kvmd-#$bin_dir/kvmd-#g" "$unit" > "$work/$(basename "$unit")"
done
# nginx's unit points at Debian's nginx; kvmd-nginx must exist too.
# (User=, Group= and SocketGroup= name sysusers.d users, which need not exist here.)
echo "systemd-analyze verify:"
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$work"/*.service "$work"/*.socket
echo "  ok"
echo "reference configs (deploy/etc) load:"
for conf in deploy/etc/*.toml; do
    svc="kvmd-$(basename "$conf" .toml)"
    "$bin_dir/$svc" --config "$conf" --dump-config >/dev/null
    echo "  $svc: ok"
done
status=0
echo "resource bounds (MemoryMax and TasksMax in every service):"
for svc in deploy/systemd/*.service; do
    for key in MemoryMax TasksMax; do
        if ! grep -q "^$key=" "$svc"; then echo "  $(basename "$svc"): no $key"; status=1; fi
    done
done
[ $status = 0 ] && echo "  ok"
echo "systemd-analyze security (limit $max_exposure):"
for svc in "$work"/*.service; do
    score=$(systemd-analyze security --offline=yes "$svc" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    name=$(basename "$svc")
    stated=$(sed -n "s/^| $name | \([0-9.]*\) |\$/\1/p" docs/SECURITY.md)
    if ! awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }'; then
        echo "  $name: $score exceeds $max_exposure"
        status=1
    elif [ "$stated" != "$score" ]; then
        echo "  $name: $score, but docs/SECURITY.md states ${stated:-nothing}"
        status=1
    else
        echo "  $name: $score ok (as docs/SECURITY.md states)"
    fi
done
exit $status
