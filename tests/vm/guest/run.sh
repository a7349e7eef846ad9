#!/bin/bash
# The real-kernel tests, inside the guest (Debian 12's kernel, systemd as PID 1, the suite
# installed by scripts/install.sh). rig-test.service runs this after multi-user.target;
# tests/vm/rig.sh on the host reads the verdict from the 9p share (/mnt/share) and runs
# the host-side half (tests/vm/host, through the guest's nginx on a hostfwd port).
#
# Every check prints what the kernel side saw, then ok or FAIL; any FAIL fails the run.
set -u
S=/mnt/share
exec > >(tee "$S/guest.log") 2>&1
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
FAILS=0
API=https://127.0.0.1
G=/sys/kernel/config/usb_gadget/kvmd

# gone SUFFIX: no input device with that phys now (the kernel removes it a moment after
# the gadget goes, so callers wait_for it rather than test once).
gone() { ! kvmd-vmprobe find "$1" --timeout 0 > /dev/null 2>&1; }
pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
section() { echo; echo "== $*"; }
saw() { sed 's/^/        kernel side: /'; }
api() { curl -sk --max-time 20 -H 'X-KVMD-User: admin' -H 'X-KVMD-Passwd: admin' "$@"; }
# wait_for SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.2; done
}
hid_field() { api "$API/api/hid" | jq -r ".result.$1"; }
is() { [ "$(hid_field "$1")" = "$2" ]; }
streamer_field() { api "$API/api/streamer" | jq -r ".result.streamer.source.$1"; }
source_is() { [ "$(streamer_field online)" = "$1" ] && [ "$(streamer_field resolution.width)x$(streamer_field resolution.height)" = "$2" ]; }
# capture NODE COMMAND...: the input events NODE delivers while COMMAND runs (until quiet).
capture() {
    local node=$1; shift
    rm -f /tmp/ev.txt /tmp/ev.err
    kvmd-vmprobe read "$node" --quiet 1500 > /tmp/ev.txt 2> /tmp/ev.err &
    local pid=$!
    wait_for 10 grep -q reading /tmp/ev.err
    "$@" > /dev/null
    wait "$pid"
    cat /tmp/ev.txt
}
# frames SECONDS: SECONDS of /streamer/stream, every frame decoded: "<n> frames: <count>x <size> ...",
# the size of the last frame last.
frames() {
    api -N --max-time "$1" "$API/streamer/stream" -o /tmp/stream.mjpeg
    kvmd-vmprobe mjpeg /tmp/stream.mjpeg > /tmp/frames.txt
    echo "$(wc -l < /tmp/frames.txt) frames decoded: $(awk '{print $3}' /tmp/frames.txt | uniq -c | awk '{printf "%s x %s, ", $1, $2}')last $(tail -1 /tmp/frames.txt | awk '{print $3}')"
}
# key_arrives KEY CODE: send_key KEY until the host side sees CODE pressed and released (up to
# 5 tries: a report written while the host is still enumerating the gadget is dropped, as
# kvmd drops it: only the newest report of a device is retried, and that is the release).
key_arrives() {
    local try ev
    for try in 1 2 3 4 5; do
        ev=$(capture "$KBD" api -X POST "$API/api/hid/events/send_key?key=$1")
        if [ "$(grep EV_KEY <<< "$ev" | paste -sd' ')" = "EV_KEY $2 1 EV_KEY $2 0" ]; then
            echo "        kernel side: EV_KEY $2 1, EV_KEY $2 0 (send_key try $try)"
            return 0
        fi
    done
    return 1
}
last_size() { awk '{print $NF}'; }

section "boot"
ifc=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set lo up
ip link set "$ifc" up
ip addr add 10.0.2.15/24 dev "$ifc"
echo "  kernel $(uname -r), systemd $(systemctl --version | head -1 | awk '{print $2}'), uptime $(cut -d' ' -f1 /proc/uptime) s"

section "the package"
pkg=$(dpkg-query -W -f '${Status} ${Version}' kvmd-rs 2>&1)
check "kvmd-rs is installed from its .deb ($pkg)" eval '[ "${pkg% *}" = "install ok installed" ]'
check "its maintainer scripts made the front's user and the socket group ($(id kvmd-nginx 2>&1))" \
    eval 'id -nG kvmd-nginx | grep -qw kvmd-api'
check "every unit of the package is enabled" \
    eval '! systemctl is-enabled $(cd /usr/lib/systemd/system && ls kvmd-*) | grep -vqx enabled'
free_mb=$(df -Pm / | awk 'NR == 2 { print $4 }')
check "the root file system has room for the tests' writes ($free_mb MiB free)" [ "$free_mb" -ge 256 ]

section "systemd: every unit of the suite"
for u in kvmd-auth.socket kvmd-hid.socket kvmd-info.socket kvmd-streamer.socket kvmd-gpio.socket kvmd-msd.socket kvmd-kasm.socket kvmd-blikvm.socket kvmd-webrtc.socket kvmd-otg.service \
    kvmd-auth.service kvmd-hid.service kvmd-info.service kvmd-streamer.service kvmd-gpio.service kvmd-msd.service kvmd-kasm.service kvmd-blikvm.service kvmd-webrtc.service kvmd-nginx.service; do
    wait_for 60 systemctl is-active -q "$u"
    state=$(systemctl show -p ActiveState,SubState --value "$u" | paste -sd/)
    if [ "${state%%/*}" = active ]; then pass "$u: $state"; else
        fail "$u: $state"; journalctl -u "$u" -n 20 --no-pager | saw
    fi
done
result=$(systemctl show -p Result --value kvmd-gencert.service)
check "kvmd-gencert.service made the front's certificate ($result)" eval '[ "$result" = success ] && [ -s /etc/kvmd/nginx/ssl/server.crt ]'
[ "$result" = success ] || journalctl -u kvmd-gencert.service -n 20 --no-pager | saw
if ! curl -sk --max-time 10 -o /dev/null "$API/"; then
    # Everything else goes through the front: stop here, with what explains it.
    fail "the front (kvmd-nginx) does not answer on $API"
    { namei -l /etc/kvmd/nginx/ssl/server.crt; ls -la /etc/kvmd /etc/kvmd/nginx/ssl; id kvmd-nginx; } 2>&1 | saw
    journalctl -u kvmd-gencert.service -n 20 --no-pager | saw
    echo fail > "$S/guest-result"
    echo ready > "$S/ready"
    exit 1
fi
code=$(curl -sk -o /dev/null -w '%{http_code}' -X POST "$API/api/auth/login" -d user=admin -d passwd=admin)
check "no default password: a fresh install refuses admin/admin ($code)" [ "$code" = 403 ]
echo admin | kvmd-htpasswd add -i admin > /dev/null
code=$(curl -sk -o /dev/null -w '%{http_code}' -X POST "$API/api/auth/login" -d user=admin -d passwd=admin)
check "after kvmd-htpasswd add admin, the login succeeds ($code)" [ "$code" = 200 ]
if [ "$code" != 200 ]; then
    journalctl -u kvmd-auth.service -u kvmd-nginx.service -n 30 --no-pager -o short-monotonic | saw
fi
# kvmd-gpio as installed: ATX in kvmd's disabled form (no real chip backend yet), the
# Redfish root open, its Systems behind auth.
atx=$(api "$API/api/atx")
check "GET /api/atx through the front: kvmd's disabled ATX" eval 'echo "$atx" | grep -q "\"enabled\": false"'
code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 10 "$API/redfish/v1")
check "GET /redfish/v1 without credentials: 200 ($code)" [ "$code" = 200 ]
code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 10 "$API/redfish/v1/Systems")
check "GET /redfish/v1/Systems without credentials: 401 ($code)" [ "$code" = 401 ]
# Only kvmd-auth may read the secrets: kvmd-hid (which owns the HID nodes) may not.
hidgroups=$(id -nG kvmd-hid)
check "kvmd-hid ($hidgroups) cannot read /etc/kvmd/htpasswd or totp.secret" \
    eval '! setpriv --reuid=kvmd-hid --regid=kvmd-hid --init-groups cat /etc/kvmd/htpasswd >/dev/null 2>&1 && ! setpriv --reuid=kvmd-hid --regid=kvmd-hid --init-groups cat /etc/kvmd/totp.secret >/dev/null 2>&1'

# Who may speak for a user: the identity header is believed from the front's uid only.
run_as() { local u=$1; shift; setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"; }
# on_info USER: GET /info?fields=meta on kvmd-info's socket as USER, naming admin; the status.
on_info() { run_as "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 5 --unix-socket /run/kvmd/info.sock -H 'X-KVMD-Auth-User: admin' "http://localhost/info?fields=meta"; }
check "nginx runs as kvmd-nginx ($(ps -o user= -C nginx | sort | uniq -c | paste -sd' '))" \
    eval '[ "$(ps -o user= -C nginx | sort -u)" = kvmd-nginx ]'
code=$(on_info kvmd-hid)
check "kvmd-hid ($(id -nG kvmd-hid)), another uid on the socket, names admin: refused ($code)" [ "$code" = 401 ]
code=$(on_info kvmd-nginx)
check "the front's uid (kvmd-nginx) names admin: believed ($code)" [ "$code" = 200 ]
code=$(on_info nobody)
check "nobody cannot connect to a service socket at all ($code)" [ "$code" = 000 ]
crt=/etc/kvmd/nginx/ssl/server.crt
san=$(openssl x509 -in $crt -noout -ext subjectAltName 2>&1 | tail -1 | sed 's/^ *//')
host=$(hostname)
by_name=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert $crt --resolve "$host:443:127.0.0.1" "https://$host/login/")
by_ip=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert $crt "https://127.0.0.1/login/")
check "the first-boot certificate verifies as $host and as 127.0.0.1 ($by_name, $by_ip; SAN $san)" \
    eval '[ "$by_name" = 200 ] && [ "$by_ip" = 200 ]'
key=$(stat -c '%U:%G %a' /etc/kvmd/nginx/ssl/server.key)
check "the TLS key is the front's only ($key; group kvmd-nginx: $(getent group kvmd-nginx | cut -d: -f4))" \
    eval '[ "$key" = "root:kvmd-nginx 640" ] && [ -z "$(getent group kvmd-nginx | cut -d: -f4)" ] && ! run_as kvmd-hid cat /etc/kvmd/nginx/ssl/server.key >/dev/null 2>&1'

section "journal: /api/log?seek=60 and follow=1"
log=$(api "$API/api/log?seek=60")
for svc in auth hid info streamer; do
    n=$(grep -c "kvmd-$svc.service\]" <<< "$log")
    check "kvmd-$svc.service: $n lines in /api/log?seek=60" [ "$n" -gt 0 ]
done
grep -m1 'kvmd-hid.service\]' <<< "$log" | saw
api -N --max-time 15 "$API/api/log?follow=1&seek=1" > /tmp/follow.txt &
follower=$!
sleep 2
marker="vm-follow-$RANDOM"
api -o /dev/null "$API/api/hid?$marker"
wait_for 10 grep -q "$marker" /tmp/follow.txt
check "follow=1 delivers a line written after it started" grep -q "$marker" /tmp/follow.txt
grep -m1 "$marker" /tmp/follow.txt | saw
kill "$follower" 2> /dev/null

section "host side: the guest's nginx from the host (auth goldens, restart under load)"
echo ready > "$S/ready"
wait_for 300 eval 'test -e "$S/restart-now" || test -e "$S/host-done"'
if [ -e "$S/restart-now" ]; then
    t0=$(date +%s.%N)
    systemctl restart kvmd-auth.service
    t1=$(date +%s.%N)
    echo "  systemctl restart kvmd-auth: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
    echo restarted > "$S/restarted"
fi
check "the host's half finished" wait_for 180 test -e "$S/host-done"
# What kvmd-auth said around its restart (its start-up, and any error).
journalctl -u kvmd-auth.service --no-pager -o short-monotonic | grep -v "' => " | tail -n 16 | saw

section "USB OTG HID: kvmd-otg's gadget on dummy_hcd, the host side of the same kernel"
KBD=$(kvmd-vmprobe find dummy_hcd.0-1/input0)
ABS=$(kvmd-vmprobe find dummy_hcd.0-1/input1)
REL=$(kvmd-vmprobe find dummy_hcd.0-1/input2)
for n in "$KBD" "$ABS" "$REL"; do
    e=${n##*/}
    echo "  $n: $(cat "/sys/class/input/$e/device/name") ($(cat "/sys/class/input/$e/device/phys"))"
done
echo "  gadget: UDC $(cat $G/UDC), state $(cat "/sys/class/udc/$(cat $G/UDC)/state"); $(ls -l /dev/kvmd-hid-keyboard | awk '{print $NF}') <- /dev/kvmd-hid-keyboard"
# spec hid.md 6.1: kvmd's boot keyboard descriptor, 65 bytes.
kbd_desc="05 01 09 06 a1 01 05 07 19 e0 29 e7 15 00 25 01 75 01 95 08 81 02 95 01 75 08 81 01 95 05 75 01 05 08
19 01 29 05 91 02 95 01 75 03 91 01 95 06 75 08 15 00 26 ff 00 05 07 19 00 2a ff 00 81 00 c0"
got_desc=$(od -An -tx1 -v $G/functions/hid.usb0/report_desc | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
check "the keyboard's report descriptor in configfs is the spec's ($(wc -c < $G/functions/hid.usb0/report_desc) bytes)" \
    [ "$got_desc" = "$(echo $kbd_desc)" ]

ev=$(capture "$KBD" api -X POST "$API/api/hid/events/send_key?key=KeyA")
saw <<< "$ev"
check "send_key KeyA: KEY_A (30) pressed and released" [ "$(grep EV_KEY <<< "$ev" | paste -sd' ')" = "EV_KEY 30 1 EV_KEY 30 0" ]

ev=$(capture "$KBD" api -X POST "$API/api/hid/print?keymap=de" --data-binary 'zY')
presses=$(grep 'EV_KEY .* 1$' <<< "$ev" | awk '{print $2}' | paste -sd' ')
releases=$(grep -c 'EV_KEY .* 0$' <<< "$ev")
echo "        kernel side: presses $presses, $releases releases"
check "print 'zY' with keymap de: KEY_Y (21), then LEFTSHIFT (42) + KEY_Z (44)" [ "$presses" = "21 42 44" ]
check "print leaves nothing pressed (3 releases)" [ "$releases" = 3 ]

ev=$(capture "$ABS" api -X POST "$API/api/hid/events/send_mouse_move?to_x=32767&to_y=32767")
saw <<< "$ev"
check "send_mouse_move to (32767, 32767): ABS_X and ABS_Y 32767" [ "$(grep EV_ABS <<< "$ev" | paste -sd' ')" = "EV_ABS 0 32767 EV_ABS 1 32767" ]
ev=$(capture "$ABS" api -X POST "$API/api/hid/events/send_mouse_move?to_x=-32768&to_y=0")
saw <<< "$ev"
check "send_mouse_move to (-32768, 0): ABS_X 0, ABS_Y 16383" [ "$(grep EV_ABS <<< "$ev" | paste -sd' ')" = "EV_ABS 0 0 EV_ABS 1 16383" ]
click() {
    api -X POST "$API/api/hid/events/send_mouse_button?button=left&state=true"
    api -X POST "$API/api/hid/events/send_mouse_button?button=left&state=false"
}
ev=$(capture "$ABS" click)
saw <<< "$ev"
check "left button: BTN_LEFT (272) pressed and released" [ "$(grep EV_KEY <<< "$ev" | paste -sd' ')" = "EV_KEY 272 1 EV_KEY 272 0" ]
ev=$(capture "$ABS" api -X POST "$API/api/hid/events/send_mouse_wheel?delta_x=0&delta_y=-5")
saw <<< "$ev"
check "send_mouse_wheel delta_y=-5: REL_WHEEL (8) -5" grep -qx 'EV_REL 8 -5' <<< "$ev"
api -o /dev/null -X POST "$API/api/hid/set_params?mouse_output=usb_rel"
ev=$(capture "$REL" api -X POST "$API/api/hid/events/send_mouse_relative?delta_x=10&delta_y=-5")
saw <<< "$ev"
check "relative mouse (usb_rel) 10,-5: REL_X 10, REL_Y -5" [ "$(grep 'EV_REL [01] ' <<< "$ev" | paste -sd' ')" = "EV_REL 0 10 EV_REL 1 -5" ]
api -o /dev/null -X POST "$API/api/hid/set_params?mouse_output=usb"

kvmd-vmprobe ws /run/kvmd/hid.sock /ws type=hid keyboard.leds.caps=true --timeout 15 > /tmp/ws.txt 2>&1 &
wsprobe=$!
sleep 1
kvmd-vmprobe led "$KBD" caps 1
wait_for 10 is keyboard.leds.caps true
leds=$(hid_field keyboard.leds | jq -c .)
byte=$(jq -r '(if .num then 1 else 0 end) + (if .caps then 2 else 0 end) + (if .scroll then 4 else 0 end)' <<< "$leds")
echo "        kernel side: the host set Caps Lock: output report $(printf '0x%02x' "$byte") read by kvmd-hid; GET /api/hid keyboard.leds = $leds"
check "Caps Lock from the host shows in GET /api/hid" is keyboard.leds.caps true
check "... and in the WebSocket hid event" wait "$wsprobe"
jq -c '.event.keyboard' /tmp/ws.txt 2> /dev/null | saw
kvmd-vmprobe led "$KBD" caps 0
check "Caps Lock off again" wait_for 10 is keyboard.leds.caps false

udc=$(cat $G/UDC)
echo "" > $G/UDC
check "UDC unbound: keyboard.online and mouse.online turn false" \
    wait_for 10 eval 'is keyboard.online false && is mouse.online false'
echo "        kernel side: udc state $(cat "/sys/class/udc/$udc/state"); /api/hid keyboard.online=$(hid_field keyboard.online)"
echo "$udc" > $G/UDC
KBD=$(kvmd-vmprobe find dummy_hcd.0-1/input0 --timeout 15)
check "rebound, no restart: KEY_B (48) arrives" key_arrives KeyB 48
check "... and keyboard.online is true again" wait_for 10 is keyboard.online true

out=$(kvmd-otg start 2>&1)
rc=$?
echo "        kvmd-otg start (again): rc $rc: $out"
check "kvmd-otg start twice is harmless (rc 0, still bound to $udc)" eval '[ "$rc" = 0 ] && [ "$(cat $G/UDC)" = "$udc" ]'
systemctl stop kvmd-hid.service kvmd-otg.service 2>&1 | saw
check "kvmd-otg stop removes the gadget" test ! -e $G
check "... and the host side loses the keyboard" wait_for 10 gone dummy_hcd.0-1/input0
systemctl start kvmd-otg.service kvmd-hid.service
KBD=$(kvmd-vmprobe find dummy_hcd.0-1/input0 --timeout 15)
check "kvmd-otg start brings it back: KEY_C (46) arrives" key_arrives KeyC 46

section "Mass storage: kvmd-msd's drive on the gadget, usb-storage on the host side"
LUN=$G/functions/mass_storage.usb0/lun.0
msd_field() { api "$API/api/msd" | jq -r ".result.$1"; }
# The host side's SCSI device of the gadget's drive (sdX or srN), found by its USB path.
host_dev() {
    local b
    for b in /sys/block/sd* /sys/block/sr*; do
        [ -e "$b" ] && readlink -f "$b" | grep -q dummy_hcd && { echo "/dev/${b##*/}"; return 0; }
    done
    return 1
}
# The host sees a drive's type when it enumerates the gadget (a PiKVM v3 cuts its USB for
# it); kvmd-msd sets the empty drive's mode on set_params, so a replug after it shows it.
replug() { local u; u=$(cat $G/UDC); echo "" > $G/UDC; sleep 1; echo "$u" > $G/UDC; }
size_is() { [ "$(blockdev --getsize64 "$1" 2> /dev/null)" = "$2" ]; }
no_medium() { ! dd if="$1" bs="$2" count=1 iflag=direct of=/dev/null 2> /dev/null; }
echo "        kernel side: $LUN: cdrom=$(cat $LUN/cdrom) ro=$(cat $LUN/ro) removable=$(cat $LUN/removable) inquiry '$(cat $LUN/inquiry_string)', attributes owned by $(stat -c %U $LUN/file)"
check "kvmd-otg made kvmd's drive: CD-ROM, read-only, removable, empty, its attributes kvmd-msd's" \
    eval '[ "$(cat $LUN/cdrom)$(cat $LUN/ro)$(cat $LUN/removable)" = 111 ] && [ -z "$(cat $LUN/file)" ] && [ "$(stat -c %U $LUN/file)" = kvmd-msd ]'
check "GET /api/msd through the front: online" wait_for 30 eval '[ "$(msd_field online)" = true ]'

head -c 4194304 /dev/urandom > /tmp/flash.img
up=$(api -X POST -H 'Expect:' --data-binary @/tmp/flash.img "$API/api/msd/write?image=flash.img")
check "a 4 MiB image uploaded through the front: written 4194304" eval 'jq -e ".result.image.written == 4194304" <<< "$up" > /dev/null'
api -o /dev/null -X POST "$API/api/msd/set_params?image=flash.img&cdrom=0"
replug
check "flash mode selected, replugged: the host side has a SCSI disk" wait_for 30 eval 'host_dev | grep -q /dev/sd'
dev=$(host_dev)
echo "        kernel side: $dev: $(cat /sys/block/${dev#/dev/}/device/vendor 2> /dev/null)$(cat /sys/block/${dev#/dev/}/device/model 2> /dev/null)"
r=$(api -X POST "$API/api/msd/set_connected?connected=1")
check "set_connected=1: $r" eval 'jq -e .ok <<< "$r" > /dev/null'
check "connected: $dev holds 4 MiB" wait_for 30 size_is "$dev" 4194304
want=$(head -c 1048576 /tmp/flash.img | sha256sum | cut -c1-16)
got=$(dd if="$dev" bs=1M count=1 iflag=direct 2> /dev/null | sha256sum | cut -c1-16)
echo "        kernel side: the first MiB of $dev: sha256 $got... (uploaded: $want...)"
check "the host side reads the uploaded bytes (the first MiB's checksum)" [ "$got" = "$want" ]
api -o /dev/null -X POST "$API/api/msd/set_connected?connected=0"
check "ejected: the host side sees no medium on $dev" wait_for 30 no_medium "$dev" 512

api -o /dev/null -X POST "$API/api/msd/set_params?rw=1"
api -o /dev/null -X POST "$API/api/msd/set_connected?connected=1"
wait_for 30 size_is "$dev" 4194304
yes 'kvmd-rs sector' 2> /dev/null | head -c 512 > /tmp/sector
dd if=/tmp/sector of="$dev" bs=512 seek=8 count=1 oflag=direct conv=fsync 2> /dev/null
wrc=$?
api -o /dev/null -X POST "$API/api/msd/set_connected?connected=0"
api "$API/api/msd/read?image=flash.img" -o /tmp/back.img
dd if=/tmp/back.img of=/tmp/back.sector bs=512 skip=8 count=1 2> /dev/null
echo "        kernel side: dd to sector 8 of $dev: rc $wrc; sector 8 of /api/msd/read: '$(head -c 32 /tmp/back.sector)...'"
check "read-write: the host side writes a sector, and /api/msd/read returns it" eval '[ "$wrc" = 0 ] && cmp -s /tmp/back.sector /tmp/sector'

mkdir -p /tmp/iso
echo "hello from kvmd-rs" > /tmp/iso/hello.txt
genisoimage -quiet -V KVMDRS -o /tmp/tiny.iso /tmp/iso
# The kernel's CD-ROM needs 300 frames (600 KiB): a smaller ISO is refused, and said so.
api -o /dev/null -X POST -H 'Expect:' --data-binary @/tmp/tiny.iso "$API/api/msd/write?image=tiny.iso"
api -o /dev/null -X POST "$API/api/msd/set_params?image=tiny.iso&cdrom=1"
r=$(api -X POST "$API/api/msd/set_connected?connected=1")
echo "        kernel side: $(dmesg | grep 'file too small' | tail -1 | cut -c16-); $(jq -c .result <<< "$r")"
check "a 360 KiB ISO as a CD-ROM: the kernel refuses it, and kvmd-msd's 400 says why" \
    eval 'jq -e ".result.error_msg | test(\"too small\")" <<< "$r" > /dev/null'
head -c 1048576 /dev/urandom > /tmp/iso/padding.bin
genisoimage -quiet -V KVMDRS -o /tmp/os.iso /tmp/iso
api -o /dev/null -X POST -H 'Expect:' --data-binary @/tmp/os.iso "$API/api/msd/write?image=os.iso"
r=$(api -X POST "$API/api/msd/set_params?image=os.iso&cdrom=1&rw=1")
check "os.iso selected as a CD-ROM; rw cleared as kvmd clears it" eval '[ "$(msd_field drive.rw)" = false ] && [ "$(msd_field drive.cdrom)" = true ]'
replug
check "CD-ROM mode, replugged: the host side has a CD drive" wait_for 30 eval 'host_dev | grep -q /dev/sr'
dev=$(host_dev)
r=$(api -X POST "$API/api/msd/set_connected?connected=1")
check "set_connected=1 (CD-ROM): $(jq -c . <<< "$r")" eval 'jq -e .ok <<< "$r" > /dev/null'
echo "        kernel side: lun.0: file=$(cat $LUN/file) cdrom=$(cat $LUN/cdrom) ro=$(cat $LUN/ro); the ISO's volume descriptor: $(dd if=/tmp/os.iso bs=1 skip=32769 count=5 2> /dev/null)"
mkdir -p /mnt/cd
mounted() { mount -t iso9660 -o ro "$dev" /mnt/cd 2> /tmp/mount.err; }
wait_for 30 mounted
content=$(cat /mnt/cd/hello.txt 2>&1)
echo "        kernel side: $(grep " /mnt/cd " /proc/mounts | cut -d' ' -f1-4); $dev: $(blockdev --getsize64 "$dev" 2>&1) bytes; mount: $(cat /tmp/mount.err); hello.txt: $content"
[ "$content" = "hello from kvmd-rs" ] || dmesg | tail -8 | saw
check "the ISO 9660 image mounts read-only on the host side, its file inside" [ "$content" = "hello from kvmd-rs" ]
umount /mnt/cd 2> /dev/null
api -o /dev/null -X POST "$API/api/msd/set_connected?connected=0"
check "ejected: the CD drive has no medium" wait_for 30 no_medium "$dev" 2048

pid=$(systemctl show -p MainPID --value kvmd-msd.service)
in_unit() { nsenter -t "$pid" -m setpriv --reuid=kvmd-msd --regid=kvmd-msd --init-groups "$@"; }
check "kvmd-msd writes its storage" in_unit touch /var/lib/kvmd/msd/.probe
rm -f /var/lib/kvmd/msd/.probe
for p in /etc/kvmd/probe /var/lib/probe /usr/probe "$G/UDC" "$LUN/removable"; do
    check "... and nothing else: not $p" eval "! in_unit sh -c 'echo x >> $p' 2> /dev/null"
done

section "V4L2: kvmd-streamer on vivid's HDMI input"
check "udev made /dev/kvmd-video -> $(readlink /dev/kvmd-video)" test -e /dev/kvmd-video
echo "        kernel side: before the first client: $(v4l2-ctl -d /dev/kvmd-video --get-input | head -1)"
# One stream client for the whole section (kvmd-streamer captures while it has one).
curl -sk -N --max-time 600 -H 'X-KVMD-User: admin' -H 'X-KVMD-Passwd: admin' "$API/streamer/stream" -o /dev/null &
viewer=$!
check "source online at 1280x720 (DV timings queried and applied)" wait_for 60 source_is true 1280x720
v4l2-ctl -d /dev/kvmd-video --get-input --query-dv-timings 2>&1 | grep -E 'Video input|Active width|Active height|Pixelclock' | saw
# vivid has a webcam as input 0 and the HDMI input as 1: the config's source.input = 1.
check "kvmd-streamer selected the HDMI input 1 (S_INPUT)" \
    grep -q 'Video input : 1 (HDMI' <<< "$(v4l2-ctl -d /dev/kvmd-video --get-input)"
api "$API/api/streamer" | jq -c '.result.streamer.source' | saw
f=$(frames 5)
saw <<< "$f"
check "the MJPEG stream decodes to 1280x720" [ "$(last_size <<< "$f")" = 1280x720 ]
check "the capture is YUYV or UYVY" grep -qE "YUYV|UYVY" <<< "$(v4l2-ctl -d /dev/kvmd-video --get-fmt-video)"

v4l2-ctl -d /dev/kvmd-video -c dv_timings_signal_mode=1
check "signal lost: source.online false (source-change event)" wait_for 30 eval '[ "$(streamer_field online)" = false ]'
api "$API/api/streamer" | jq -c '.result.streamer.source' | saw
f=$(frames 4)
saw <<< "$f"
check "the stream goes on with the no-signal picture" [ -n "$(last_size <<< "$f")" ]

v4l2-ctl -d /dev/kvmd-video -c dv_timings_signal_mode=0
check "signal back: online at 1280x720 again" wait_for 30 source_is true 1280x720
idx=$(v4l2-ctl -d /dev/kvmd-video -L | sed -n 's/^[[:space:]]*\([0-9]*\): 1920x1080p60.*/\1/p' | head -1)
[ -n "$idx" ] || { fail "no 1920x1080p60 entry in vivid's dv_timings menu"; v4l2-ctl -d /dev/kvmd-video -L | grep -A3 dv_timings | saw; }
v4l2-ctl -d /dev/kvmd-video -c dv_timings="$idx" -c dv_timings_signal_mode=4
check "mode change to 1920x1080 (timings $idx): online at the new size, no restart" wait_for 30 source_is true 1920x1080
api "$API/api/streamer" | jq -c '.result.streamer.source' | saw
f=$(frames 6)
saw <<< "$f"
check "the MJPEG stream decodes to 1920x1080" [ "$(last_size <<< "$f")" = 1920x1080 ]
check "kvmd-streamer was never restarted ($(systemctl show -p NRestarts --value kvmd-streamer.service) restarts)" \
    [ "$(systemctl show -p NRestarts --value kvmd-streamer.service)" = 0 ]
journalctl -u kvmd-streamer.service --no-pager -o cat | grep -iE 'source|signal|opened' | tail -6 | saw
kill "$viewer" 2> /dev/null

section "GPIO: kvmd-gpio on a gpio-sim chip (the kernel's GPIO character device)"
# gpio-sim (built for this kernel by the rig) makes a real gpiochip whose lines the rig
# drives (`pull`) and watches (`value`) from sysfs. ATX on lines 23/27 (buttons) and
# 24/22 (LEDs), kvmd's default pins; a GPIO output "relay" on 5 and an input "sense" on 6.
SIM=/sys/kernel/config/gpio-sim/kvmd
# Line 5 has a name, and the config asks for it by that name (pin = "kvmd-relay").
if modprobe gpio-sim 2>&1 | saw && mkdir -p "$SIM/bank0/line5" && echo 32 > "$SIM/bank0/num_lines" \
    && echo kvmd-sim > "$SIM/bank0/label" && echo kvmd-relay > "$SIM/bank0/line5/name" && echo 1 > "$SIM/live"; then
    chip=$(cat "$SIM/bank0/chip_name")
    dev=$(cat "$SIM/dev_name")
    L=/sys/devices/platform/$dev/$chip
    udevadm settle
    check "gpio-sim made /dev/$chip ($(stat -c '%G %a' "/dev/$chip" 2>&1)): group kvmd-gpiochip by udev" \
        eval '[ "$(stat -c %G "/dev/$chip")" = kvmd-gpiochip ]'
    mkdir -p /etc/kvmd/gpio.toml.d
    # The chip by its label: it may come back under another number (below).
    printf '%s\n' '[chip]' 'label = "kvmd-sim"' '' '[atx]' 'type = "gpio"' '' \
        '[gpio.scheme.relay]' 'pin = "kvmd-relay"' 'mode = "output"' 'pulse = { delay = 0.1, max_delay = 1.0 }' '' '[gpio.scheme.sense]' 'pin = 6' 'mode = "input"' '' \
        '[gpio.view]' 'table = [["relay", "sense"]]' > /etc/kvmd/gpio.toml.d/vm.toml
    systemctl restart kvmd-gpio.service
    atx_field() { api "$API/api/atx" | jq -r ".result.$1"; }
    gpio_field() { api "$API/api/gpio" | jq -r ".result.state.$1"; }
    check "kvmd-gpio (a DynamicUser in group kvmd-gpiochip) holds the lines: ATX enabled" \
        wait_for 30 eval '[ "$(atx_field enabled)" = true ]'
    journalctl -u kvmd-gpio.service --no-pager -o cat | tail -3 | saw
    # pulse LINE COMMAND...: the ms LINE stays high while COMMAND runs (empty: no pulse).
    pulse() {
        local line=$1
        shift
        kvmd-vmprobe pulse "$L/sim_gpio$line/value" --timeout 12 > /tmp/pulse.txt 2>&1 &
        local p=$!
        sleep 0.3
        "$@" > /dev/null
        wait "$p"
        sed -n 's/^high //p' /tmp/pulse.txt
    }
    # within LINE WANT COMMAND...: COMMAND holds LINE high for WANT ms, within ±15 ms,
    # measured from the guest side by polling the line's value every millisecond; the best
    # of up to three clicks (an emulated guest can be descheduled mid-pulse). Prints them all.
    within() {
        local line=$1 want=$2 tries=""
        shift 2
        for _ in 1 2 3; do
            ms=$(pulse "$line" "$@")
            tries="$tries ${ms:-none}"
            wait_for 10 eval '[ "$(atx_field busy)" = false ]'
            if [ -n "$ms" ] && [ "$ms" -ge $((want - 15)) ] && [ "$ms" -le $((want + 15)) ]; then
                echo "$tries"
                return 0
            fi
        done
        echo "$tries"
        return 1
    }
    got=$(within 23 100 api -X POST "$API/api/atx/click?button=power&wait=1")
    rc=$?
    check "a power click drives line 23 high for click_delay, 100 ms ±15 (ms:$got)" [ "$rc" = 0 ]
    got=$(within 27 100 api -X POST "$API/api/atx/click?button=reset&wait=1")
    rc=$?
    check "a reset click drives line 27 high for 100 ms ±15 (ms:$got)" [ "$rc" = 0 ]
    ms=$(pulse 23 api -X POST "$API/api/atx/click?button=power_long&wait=1")
    check "a long power click holds line 23 for long_click_delay, 5500 ms ±15 ($ms ms)" \
        eval '[ -n "$ms" ] && [ "$ms" -ge 5485 ] && [ "$ms" -le 5515 ]'
    kvmd-vmprobe ws /run/kvmd/hid.sock /ws type=atx leds.power=true --timeout 15 > /tmp/ws-atx.txt 2>&1 &
    w=$!
    sleep 1
    echo pull-up > "$L/sim_gpio24/pull"
    check "the power LED line 24 pulled up: /api/atx leds.power true" \
        wait_for 10 eval '[ "$(atx_field leds.power)" = true ]'
    wait "$w"
    check "... and the atx event on /api/ws says so" grep -q '"power": true' /tmp/ws-atx.txt
    ms=$(pulse 23 api -X POST "$API/api/atx/power?action=on&wait=1")
    check "power on while the LED is on presses nothing (line 23: ${ms:-no pulse})" [ -z "$ms" ]
    ms=$(pulse 27 api -X POST "$API/api/atx/power?action=reset_hard&wait=1")
    check "reset_hard while on presses reset (line 27: ${ms:-no} ms)" eval '[ -n "$ms" ] && [ "$ms" -ge 85 ]'
    ms=$(pulse 27 api -X POST -H 'Content-Type: application/json' -d '{"ResetType": "ForceRestart"}' \
        "$API/redfish/v1/Systems/0/Actions/ComputerSystem.Reset")
    check "Redfish ComputerSystem.Reset ForceRestart presses reset too (line 27: ${ms:-no} ms)" \
        eval '[ -n "$ms" ] && [ "$ms" -ge 85 ]'
    wait_for 5 eval '[ "$(atx_field busy)" = false ]'
    ms=$(pulse 23 api -X POST "$API/api/atx/power?action=off&wait=1")
    check "power off while on: a power click (${ms:-no} ms)" eval '[ -n "$ms" ] && [ "$ms" -ge 85 ]'
    echo pull-down > "$L/sim_gpio24/pull"
    check "the LED line released: leds.power false" wait_for 10 eval '[ "$(atx_field leds.power)" = false ]'

    api -X POST "$API/api/gpio/switch?channel=relay&state=1" > /dev/null
    check "GPIO switch relay (by its line name kvmd-relay) on: line 5 driven high" wait_for 5 eval '[ "$(cat "$L/sim_gpio5/value")" = 1 ]'
    check "... and /api/gpio says so" wait_for 5 eval '[ "$(gpio_field outputs.relay.state)" = true ]'
    api -X POST "$API/api/gpio/switch?channel=relay&state=0" > /dev/null
    check "GPIO switch relay off: line 5 low" wait_for 5 eval '[ "$(cat "$L/sim_gpio5/value")" = 0 ]'
    wait_for 5 eval '[ "$(gpio_field outputs.relay.busy)" = false ]'
    ms=$(pulse 5 api -X POST "$API/api/gpio/pulse?channel=relay&delay=0.3&wait=1")
    check "GPIO pulse relay delay=0.3: line 5 high for ${ms:-no} ms (300 ±15)" \
        eval '[ -n "$ms" ] && [ "$ms" -ge 285 ] && [ "$ms" -le 315 ]'
    wait_for 5 eval '[ "$(gpio_field outputs.relay.busy)" = false ]'
    ms=$(pulse 5 api -X POST "$API/api/gpio/pulse?channel=relay&delay=3&wait=1")
    check "GPIO pulse delay=3 is cut to max_delay 1.0 as kvmd cuts it (${ms:-no} ms, 1000 ±15)" \
        eval '[ -n "$ms" ] && [ "$ms" -ge 985 ] && [ "$ms" -le 1015 ]'
    kvmd-vmprobe ws /run/kvmd/hid.sock /ws type=gpio state.inputs.sense.state=true --timeout 15 > /tmp/ws-gpio.txt 2>&1 &
    w=$!
    sleep 1
    echo pull-up > "$L/sim_gpio6/pull"
    check "input sense: line 6 pulled up reads true" wait_for 10 eval '[ "$(gpio_field inputs.sense.state)" = true ]'
    wait "$w"
    check "... and the gpio event on /api/ws carries only that channel" \
        eval 'jq -e ".event == {\"state\": {\"inputs\": {\"sense\": {\"online\": true, \"state\": true}}}}" /tmp/ws-gpio.txt > /dev/null'
    saw < /tmp/ws-gpio.txt

    echo 0 > "$SIM/live"
    check "the chip taken away: sense goes offline" wait_for 15 eval '[ "$(gpio_field inputs.sense.online)" = false ]'
    r=$(api -X POST "$API/api/gpio/switch?channel=relay&state=1&wait=1" -w ' %{http_code}')
    check "... a switch with wait=1 meanwhile: kvmd's 400 GpioDriverOfflineError" \
        eval 'echo "$r" | grep -q "GPIO driver GPIO(__gpio__) is offline" && [ "${r##* }" = 400 ]'
    wait_for 5 eval '[ "$(gpio_field outputs.relay.busy)" = false ]'
    echo 1 > "$SIM/live"
    udevadm settle
    echo "        kernel side: back as $(cat "$SIM/bank0/chip_name") (the old one may hold its number until released)"
    check "the chip back (found by its label): sense online again, no restart" wait_for 15 eval '[ "$(gpio_field inputs.sense.online)" = true ]'
    check "... and kvmd-gpio was never restarted" [ "$(systemctl show -p NRestarts --value kvmd-gpio.service)" = 0 ]
    journalctl -u kvmd-gpio.service --no-pager -o cat | grep -iE 'chip' | tail -3 | saw
else
    fail "gpio-sim: no simulated chip (modprobe or configfs failed)"
fi

section "systemd-analyze security, in the guest"
printf '  %-26s %s\n' UNIT EXPOSURE
for u in $(cd /usr/lib/systemd/system && ls kvmd-*.service); do
    score=$(systemd-analyze security "$u" 2> /dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    printf '  %-26s %s\n' "$u" "${score:-?}"
    awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }' || fail "$u: exposure ${score:-?} above 2.0"
done

section "verdict"
if [ "$FAILS" = 0 ]; then echo "  guest: all checks passed"; echo pass > "$S/guest-result"
else echo "  guest: $FAILS checks failed"; echo fail > "$S/guest-result"; fi
