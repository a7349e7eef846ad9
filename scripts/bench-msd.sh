#!/usr/bin/env bash
# kvmd-msd through the real nginx front over TLS on 127.0.0.1, one run, $ROUNDS interleaved
# rounds of a $MSD_MIB MiB image (2048 by default):
#   dd        dd bs=1M conv=fsync of the image into the same storage directory (the ceiling
#             of an upload: the same bytes, the same disk, synced at the end)
#   upload    POST /api/msd/write (curl -T: the file streamed as the body, as the web UI sends it)
#   nginx     nginx serving the same stored file statically through the same front
#   read      GET /api/msd/read of it, no compression
#   remote    POST /api/msd/write_remote of the same bytes served by the front's nginx (https)
# MiB/s of each, ratios (upload/dd, read/nginx, remote/upload), and kvmd-msd's peak RSS while
# the uploads ran (sampled every 50 ms).
source "$(dirname "$0")/bench-lib.sh"
mib_n="${MSD_MIB:-2048}"
msd_pid=$(pid_of kvmd-msd)
root=$(sed -n 's/^  Runtime   \([^ ]*\) .*/\1/p' "$log")
storage="$root/var/msd"
share="$root/web/share"
[ -d "$storage" ] || { echo "no storage in $root"; cat "$log"; exit 1; }
mkdir -p "$share"
cookie="Cookie: auth_token=$token"
src=$(mktemp -p /dev/shm kvmd-bench-msd.XXXXXX)
trap 'rm -f "$src" "$share/bench-src.img" "$share/bench-read.img"; cleanup' EXIT
head -c $((mib_n * 1048576)) /dev/urandom > "$src"
# The remote download's source: the same bytes, served by the front.
cp "$src" "$share/bench-src.img"
chmod 0644 "$share/bench-src.img"
idle=$(rss_kib "$msd_pid")
peak=$idle

# secs COMMAND...: wall seconds of COMMAND.
secs() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
rate() { awk -v s="$1" -v m="$mib_n" 'BEGIN { printf "%.0f", m / s }'; }
api() { curl -sk --http1.1 -H "$cookie" "$@"; }
remove() { api -X POST -o /dev/null "$base/api/msd/remove?image=$1"; }
# -T streams the file (--data-binary would load all of it into memory first).
upload() { api -X POST -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$src" "$base/api/msd/write?image=bench.img"; }
sample_rss() {
    local m=0 r
    while kill -0 "$1" 2> /dev/null; do
        r=$(rss_kib "$msd_pid"); [ "$r" -gt "$m" ] && m=$r
        sleep 0.05
    done
    echo "$m"
}

results=()
for r in $(seq "$rounds"); do
    t=$(secs dd if="$src" of="$storage/.bench-dd" bs=1M conv=fsync status=none); rm -f "$storage/.bench-dd"
    results+=("$r dd $(rate "$t")")
    upload > "$log.up" &
    up=$!
    sample_rss "$up" > "$log.rss" &
    sampler=$!
    t0=$(date +%s.%N); wait "$up"; t1=$(date +%s.%N)
    wait "$sampler"
    grep -q "\"written\": $((mib_n * 1048576))" "$log.up" || { echo "upload failed: $(cat "$log.up")"; exit 1; }
    m=$(cat "$log.rss"); [ "$m" -gt "$peak" ] && peak=$m
    results+=("$r upload $(rate "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")")
    ln -f "$storage/bench.img" "$share/bench-read.img"
    # The upload's writeback done first (it would slow whichever download ran first), and
    # the two downloads in turns: nginx first in odd rounds, kvmd-msd first in even ones.
    sync
    for which in $([ $((r % 2)) = 1 ] && echo "nginx read" || echo "read nginx"); do
        case $which in
            nginx) results+=("$r nginx $(rate "$(secs api -o /dev/null "$base/share/bench-read.img")")") ;;
            read) results+=("$r read $(rate "$(secs api -o /dev/null "$base/api/msd/read?image=bench.img")")") ;;
        esac
    done
    rm -f "$share/bench-read.img"
    remove bench.img
    t=$(secs api -X POST -o "$log.remote" "$base/api/msd/write_remote?insecure=1&image=bench.img&url=$base/share/bench-src.img")
    tail -1 "$log.remote" | grep -q "\"written\": $((mib_n * 1048576))" || { echo "write_remote failed:"; cat "$log.remote"; exit 1; }
    results+=("$r remote $(rate "$t")")
    remove bench.img
done
echo
printf '%s\n' "${results[@]}" | awk '
    { v[$2, $1] = $3; n = ($1 > n ? $1 : n) }
    function median(a, k,   i, j, t) {
        for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    function row(name, ref, label,   r, x, q, lo, hi) {
        lo = 1e9; hi = 0
        for (r = 1; r <= n; r++) {
            x[r] = v[name, r]
            if (ref != "") { q[r] = v[name, r] / v[ref, r]; if (q[r] < lo) lo = q[r]; if (q[r] > hi) hi = q[r] }
        }
        if (ref == "") printf "| %s | %d | | |\n", label, median(x, n)
        else printf "| %s | %d | %.2f | %.2f-%.2f |\n", label, median(x, n), median(q, n), lo, hi
    }
    END {
        print "| target | MiB/s (median round) | ratio (median of rounds) | ratio range |"
        print "|---|---|---|---|"
        row("dd", "", "dd bs=1M conv=fsync into the storage")
        row("upload", "dd", "POST /api/msd/write through nginx (to dd)")
        row("nginx", "", "nginx static, the same file")
        row("read", "nginx", "GET /api/msd/read (to nginx static)")
        row("remote", "upload", "POST /api/msd/write_remote from nginx https (to the upload)")
    }'
echo
echo "kvmd-msd RSS: idle $(mib "$idle") MiB, peak during the uploads $(mib "$peak") MiB, after the runs $(mib "$(rss_kib "$msd_pid")") MiB"
echo "($(nproc) cores, $mib_n MiB image from /dev/shm, $rounds rounds; storage on $(df -T "$storage" | awk 'NR == 2 {print $2}'); $(nginx -v 2>&1 | sed 's/.*: //'))"
