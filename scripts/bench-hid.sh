#!/usr/bin/env bash
# kvmd-hid through the real nginx front, one run: (a) nginx static /robots.txt (the
# ceiling), (b) POST /api/hid/events/send_key?key=KeyA&state=true with the session cookie;
# wrk -t2 -c32, ratio to (a); kvmd-hid's idle RSS.
source "$(dirname "$0")/bench-lib.sh"
hid_pid=$(pid_of kvmd-hid)
idle=$(rss_kib "$hid_pid")
post=$(mktemp --suffix=.lua)
echo 'wrk.method = "POST"' > "$post"
target static /robots.txt
WRK_SCRIPT="$post" target send_key "/api/hid/events/send_key?key=KeyA&state=true" "Cookie: auth_token=$token"
run_rounds
rm -f "$post"
echo
rounds_table
echo
echo "kvmd-hid RSS: idle $(mib "$idle") MiB, after the runs $(mib "$(rss_kib "$hid_pid")") MiB"
echo "($(nproc) cores, wrk -t2 -c32, $rounds rounds of -d$duration each, $(nginx -v 2>&1 | sed 's/.*: //'))"
echo
echo "| one WebSocket client on kvmd-hid's socket | value |"
echo "|---|---|"
"$bin/kvmd-wsbench" "$(sed -n 's/.*Runtime   \([^ ]*\).*/\1/p' "$log")/run/hid.sock" 20000
