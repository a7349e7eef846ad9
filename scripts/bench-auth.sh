#!/usr/bin/env bash
# kvmd-auth through the real nginx front, one run, everything side by side:
#   (a) GET /robots.txt served by nginx itself (the TLS + nginx ceiling)
#   (b) GET /api/auth/check with the session cookie
#   (c) the same with X-KVMD-User/X-KVMD-Passwd, for an {SSHA512} user and a bcrypt user
#   (d) the same with HTTP Basic
# wrk, 2 threads, 32 connections, $DURATION each (the reference method of
# BENCHMARKS-REFERENCE.md). Prints a markdown table with ratios to (a).
set -euo pipefail
bin="${1:-target/release}"
duration="${DURATION:-10s}"
port="${BENCH_PORT:-18443}"
log="$(mktemp)"
KVMD_BIN_DIR="$bin" KVMD_DEMO_HTTPS_PORT="$port" KVMD_DEMO_HTTP_PORT="$((port + 1))" \
    "$bin/kvmd-demo" --bench-users > "$log" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do curl -sk -o /dev/null "https://127.0.0.1:$port/robots.txt" && break; sleep 0.1; done
base="https://127.0.0.1:$port"
token=$(curl -sk -i --http1.1 -d 'user=admin&passwd=admin' "$base/api/auth/login" | sed -n 's/^Set-Cookie: auth_token=\([0-9a-f]*\);.*/\1/p' | tr -d '\r')
[ -n "$token" ] || { echo "login failed"; cat "$log"; exit 1; }
auth_pid=$(sed -n 's/.*Process   kvmd-auth (pid \([0-9]*\)).*/\1/p' "$log")
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
idle_rss=$(rss "$auth_pid")

run() { # name, path, headers...
    local name=$1 path=$2; shift 2
    local args=()
    for h in "$@"; do args+=(-H "$h"); done
    wrk -t2 -c32 -d"$duration" --latency "${args[@]}" "$base$path" > "$log.$name"
    local rps p50 p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' "$log.$name")
    p50=$(awk '$1 == "50%" {print $2}' "$log.$name")
    p99=$(awk '$1 == "99%" {print $2}' "$log.$name")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$log.$name")
    echo "$name $rps $p50 $p99 ${non2xx:-0}"
    rm -f "$log.$name"
}
results=()
results+=("$(run static /robots.txt)")
results+=("$(run cookie /api/auth/check "Cookie: auth_token=$token")")
results+=("$(run xhdr_ssha512 /api/auth/check "X-KVMD-User: admin" "X-KVMD-Passwd: admin")")
results+=("$(run xhdr_bcrypt /api/auth/check "X-KVMD-User: bc" "X-KVMD-Passwd: admin")")
results+=("$(run basic /api/auth/check "Authorization: Basic $(printf admin:admin | base64)")")
loaded_rss=$(rss "$auth_pid")
ceiling=$(echo "${results[0]}" | awk '{print $2}')
echo
echo "| target | req/s | p50 | p99 | ratio to nginx static | non-2xx |"
echo "|---|---|---|---|---|---|"
for r in "${results[@]}"; do
    read -r name rps p50 p99 bad <<< "$r"
    ratio=$(awk -v a="$rps" -v b="$ceiling" 'BEGIN { printf "%.2f", a / b }')
    echo "| $name | $rps | $p50 | $p99 | $ratio | $bad |"
done
echo
echo "kvmd-auth RSS: idle $((idle_rss / 1024)).$(( (idle_rss % 1024) * 10 / 1024 )) MiB, after the runs $((loaded_rss / 1024)).$(( (loaded_rss % 1024) * 10 / 1024 )) MiB"
echo "($(nproc) cores, wrk -t2 -c32 -d$duration, $(nginx -v 2>&1 | sed 's/.*: //'))"
