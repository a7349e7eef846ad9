#!/usr/bin/env bash
# kvmd-gpio through the real nginx front, one run: (a) nginx static /robots.txt (the
# ceiling), (b) GET /api/atx, (c) GET /api/gpio, (d) GET /redfish/v1/Systems/0, with the
# session cookie (the calls PiKVM client libraries poll); wrk -t2 -c32, $ROUNDS
# interleaved rounds, ratios to (a); kvmd-gpio's RSS. The demo runs ATX on the virtual
# target's front panel.
source "$(dirname "$0")/bench-lib.sh"
gpio_pid=$(pid_of kvmd-gpio)
idle=$(rss_kib "$gpio_pid")
cookie="Cookie: auth_token=$token"
target static /robots.txt
target atx /api/atx "$cookie"
target gpio /api/gpio "$cookie"
target redfish_system /redfish/v1/Systems/0 "$cookie"
run_rounds
echo
rounds_table
echo
echo "kvmd-gpio RSS: idle $(mib "$idle") MiB, after the runs $(mib "$(rss_kib "$gpio_pid")") MiB"
echo "($(nproc) cores, wrk -t2 -c32, $rounds rounds of -d$duration each, $(nginx -v 2>&1 | sed 's/.*: //'))"
