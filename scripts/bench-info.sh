#!/usr/bin/env bash
# kvmd-info through the real nginx front, one run:
#   (a) nginx static /robots.txt (the ceiling), (b) GET /api/info?fields=meta, (c) the full
#   GET /api/info, both with the session cookie; wrk -t2 -c32, $ROUNDS interleaved
#   rounds, ratios to (a).
#   Then 100 concurrent `GET /api/log?seek=1&follow=1` clients: CPU of kvmd-info (and
#   nginx) per new log line delivered to all of them, and kvmd-info's memory.
# The demo's kvmd-info takes 8 followers by default (log.max_followers); the bench's 100
# need room (the environment layer of its config, inherited by the demo's services).
export KVMD_INFO__LOG__MAX_FOLLOWERS=128
source "$(dirname "$0")/bench-lib.sh"
info_pid=$(pid_of kvmd-info)
nginx_pid=$(pid_of nginx)
idle=$(rss_kib "$info_pid")
cookie="Cookie: auth_token=$token"
target static /robots.txt
target info_fields_meta "/api/info?fields=meta" "$cookie"
target info_full /api/info "$cookie"
run_rounds
echo
rounds_table
echo
echo "kvmd-info RSS: idle $(mib "$idle") MiB, after the runs $(mib "$(rss_kib "$info_pid")") MiB"

# 100 followers.
clients=100
lines=500
followers=()
for i in $(seq "$clients"); do
    curl -sk -N --http1.1 -H "$cookie" "$base/api/log?seek=1&follow=1" > "$log.f$i" 2>/dev/null &
    followers+=($!)
done
sleep 3
rss_follow=$(rss_kib "$info_pid")
nginx_children() { pgrep -P "$nginx_pid" | while read -r p; do cpu_ticks "$p"; done | awk '{s += $1} END {print s + 0}'; }
info0=$(cpu_ticks "$info_pid"); ngx0=$(nginx_children)
sleep 5
info_idle=$(( $(cpu_ticks "$info_pid") - info0 ))
# New lines: each request is one access line of kvmd-auth.
urls=()
for _ in $(seq "$lines"); do urls+=("$base/api/auth/check"); done
info0=$(cpu_ticks "$info_pid"); ngx0=$(nginx_children)
curl -sk -H "$cookie" "${urls[@]}" > /dev/null
for _ in $(seq 100); do
    n=$(grep -c "GET /auth/check" "$log.f$clients" || true)
    [ "$n" -ge "$lines" ] && break
    sleep 0.1
done
info_cpu=$(( $(cpu_ticks "$info_pid") - info0 )); ngx_cpu=$(( $(nginx_children) - ngx0 ))
delivered=$(cat "$log".f* | grep -c "GET /auth/check" || true)
kill "${followers[@]}" 2>/dev/null || true
wait "${followers[@]}" 2>/dev/null || true
tick_ms=$(awk -v h="$(getconf CLK_TCK)" 'BEGIN { print 1000 / h }')
echo
echo "| $clients followers | value |"
echo "|---|---|"
echo "| lines written / delivered (all clients) | $lines / $delivered |"
echo "| kvmd-info CPU per line delivered to all clients | $(awk -v t="$info_cpu" -v m="$tick_ms" -v l="$lines" 'BEGIN { printf "%.3f ms", t * m / l }') |"
echo "| nginx CPU per line delivered to all clients | $(awk -v t="$ngx_cpu" -v m="$tick_ms" -v l="$lines" 'BEGIN { printf "%.3f ms", t * m / l }') |"
echo "| kvmd-info CPU while idle with $clients followers | $(awk -v t="$info_idle" -v m="$tick_ms" 'BEGIN { printf "%.1f %% of a core", t * m / 5000 * 100 }') |"
echo "| kvmd-info RSS with $clients followers | $(mib "$rss_follow") MiB |"
echo "($(nproc) cores, wrk -t2 -c32, $rounds rounds of -d$duration each, $(nginx -v 2>&1 | sed 's/.*: //'))"
