# Shared by the bench-* scripts: start the demo stack from a build, log in, run wrk,
# read a process's memory and CPU time. Source it; it sets $base, $token, $log and a trap.
set -euo pipefail
bin="${1:-target/release}"
duration="${DURATION:-4s}"
# Rounds of side-by-side runs: each round runs every target once, the ceiling first.
rounds="${ROUNDS:-5}"
port="${BENCH_PORT:-18443}"
log="$(mktemp)"
KVMD_BIN_DIR="$bin" KVMD_DEMO_HTTPS_PORT="$port" KVMD_DEMO_HTTP_PORT="$((port + 1))" KVMD_DEMO_BLIKVM_PORT="$((port + 2))" \
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

# Side by side, interleaved: register targets with `target NAME PATH [HEADER...]` (the first
# one is the ceiling; WRK_SCRIPT, if set, is kept with the target), then `run_rounds` runs
# $rounds rounds of every target in turn, so a slow spell of the machine hits all of them,
# and `rounds_table` prints, per target, the median req/s (p50 and p99 of that round), the
# median of its per-round ratios to the ceiling, and their range.
t_names=(); t_paths=(); t_scripts=(); t_headers=(); t_results=()
target() {
    t_names+=("$1"); t_paths+=("$2"); t_scripts+=("${WRK_SCRIPT:-}")
    local IFS=$'\x1f'; shift 2; t_headers+=("$*")
}
run_rounds() {
    local r i hdrs
    for r in $(seq "$rounds"); do
        for i in "${!t_names[@]}"; do
            IFS=$'\x1f' read -r -a hdrs <<< "${t_headers[$i]}"
            t_results+=("$r $(WRK_SCRIPT="${t_scripts[$i]}" wrk_run "${t_names[$i]}" "${t_paths[$i]}" "${hdrs[@]}")")
        done
    done
}
rounds_table() {
    printf '%s\n' "${t_results[@]}" | awk -v ceiling="${t_names[0]}" -v order="${t_names[*]}" '
        { round = $1; name = $2; rps[name, round] = $3; p50[name, round] = $4; p99[name, round] = $5; bad[name] += $6; rounds[round] = 1 }
        function median(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END {
            n = 0; for (r in rounds) n++
            print "| target | req/s (median round) | p50 | p99 | ratio to nginx static (median) | ratio range | non-2xx |"
            print "|---|---|---|---|---|---|---|"
            k = split(order, names, " ")
            for (t = 1; t <= k; t++) {
                name = names[t]
                lo = hi = rps[name, 1] / rps[ceiling, 1]
                for (r = 1; r <= n; r++) {
                    v[r] = rps[name, r]; q[r] = rps[name, r] / rps[ceiling, r]
                    if (q[r] < lo) lo = q[r]; if (q[r] > hi) hi = q[r]
                }
                m = median(v, n); pick = 1
                for (r = 1; r <= n; r++) if (rps[name, r] == m) pick = r
                printf "| %s | %.0f | %s | %s | %.2f | %.2f-%.2f | %d |\n", name, m, p50[name, pick], p99[name, pick], median(q, n), lo, hi, bad[name]
            }
        }'
}

