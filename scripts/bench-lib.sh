# Shared by the bench-* scripts: start the demo stack from a build, log in, run wrk,
# read a process's memory and CPU time. Source it; it sets $base, $token, $log and a trap.
set -euo pipefail
bin="${1:-target/release}"
duration="${DURATION:-10s}"
port="${BENCH_PORT:-18443}"
log="$(mktemp)"
KVMD_BIN_DIR="$bin" KVMD_DEMO_HTTPS_PORT="$port" KVMD_DEMO_HTTP_PORT="$((port + 1))" \
    "$bin/kvmd-demo" --bench-users > "$log" 2>&1 &
demo=$!
cleanup() { kill "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; rm -f "$log" "$log".*; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$port/robots.txt" && break; sleep 0.1; done
base="https://127.0.0.1:$port"
token=$(curl -sk -i --http1.1 -d 'user=admin&passwd=admin' "$base/api/auth/login" \
    | sed -n 's/^Set-Cookie: auth_token=\([0-9a-f]*\);.*/\1/p' | tr -d '\r')
[ -n "$token" ] || { echo "login failed"; cat "$log"; exit 1; }

pid_of() { sed -n "s/.*Process   $1 (pid \([0-9]*\)).*/\1/p" "$log"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# utime + stime of a process and its children, in clock ticks.
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }

# wrk_run NAME PATH [HEADER...]: one line "name req/s p50 p99 non2xx".
wrk_run() {
    local name=$1 path=$2; shift 2
    local args=()
    local hdr
    for hdr in "$@"; do args+=(-H "$hdr"); done
    [ -n "${WRK_SCRIPT:-}" ] && args+=(-s "$WRK_SCRIPT")
    wrk -t2 -c32 -d"$duration" --latency "${args[@]}" "$base$path" > "$log.$name"
    local rps p50 p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' "$log.$name")
    p50=$(awk '$1 == "50%" {print $2}' "$log.$name")
    p99=$(awk '$1 == "99%" {print $2}' "$log.$name")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$log.$name")
    echo "$name $rps $p50 $p99 ${non2xx:-0}"
}

# table RESULT...: the markdown table with ratios to the first result.
table() {
    local ceiling
    ceiling=$(echo "$1" | awk '{print $2}')
    echo "| target | req/s | p50 | p99 | ratio to nginx static | non-2xx |"
    echo "|---|---|---|---|---|---|"
    for r in "$@"; do
        read -r name rps p50 p99 bad <<< "$r"
        echo "| $name | $rps | $p50 | $p99 | $(awk -v a="$rps" -v b="$ceiling" 'BEGIN { printf "%.2f", a / b }') | $bad |"
    done
}
