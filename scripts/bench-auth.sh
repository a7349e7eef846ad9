#!/usr/bin/env bash
# kvmd-auth through the real nginx front, one run, everything side by side:
#   (a) GET /robots.txt served by nginx itself (the TLS + nginx ceiling)
#   (b) GET /api/auth/check with the session cookie
#   (c) the same with X-KVMD-User/X-KVMD-Passwd, for an {SSHA512} user and a bcrypt user
#   (d) the same with HTTP Basic
#   (e) the same with the demo's API key (Authorization: Bearer demo:demo)
#   (f) the same with the session token as a bearer (BliKVM's tokens)
#   (g) GET /api/msd with the cookie, and BliKVM's /msd_extra with the token (kvmd-blikvm:
#       the token checked by kvmd-auth, then kvmd-msd's /msd asked with it: two checks)
# wrk, 2 threads, 32 connections (the reference method of BENCHMARKS-REFERENCE.md), in
# $ROUNDS interleaved rounds of $DURATION each. Prints a markdown table with ratios to (a).
source "$(dirname "$0")/bench-lib.sh"
auth_pid=$(pid_of kvmd-auth)
idle=$(rss_kib "$auth_pid")
target static /robots.txt
target cookie /api/auth/check "Cookie: auth_token=$token"
target xhdr_ssha512 /api/auth/check "X-KVMD-User: admin" "X-KVMD-Passwd: admin"
target xhdr_bcrypt /api/auth/check "X-KVMD-User: bc" "X-KVMD-Passwd: admin"
target basic /api/auth/check "Authorization: Basic $(printf admin:admin | base64)"
target api_key /api/auth/check "Authorization: Bearer demo:demo"
target bearer_token /api/auth/check "Authorization: Bearer $token"
target pikvm_msd /api/msd "Cookie: auth_token=$token"
target blikvm_msd_extra /msd_extra "token: $token"
run_rounds
echo
rounds_table
echo
echo "kvmd-auth RSS: idle $(mib "$idle") MiB, after the runs $(mib "$(rss_kib "$auth_pid")") MiB"
echo "($(nproc) cores, wrk -t2 -c32, $rounds rounds of -d$duration each, $(nginx -v 2>&1 | sed 's/.*: //'))"
