#!/usr/bin/env bash
# The real-kernel tests (`just test-vm`): boots Debian 12's own kernel in QEMU with the
# suite installed in a Debian root file system under systemd, and runs tests/vm/guest/run.sh
# in it (USB OTG HID through dummy_hcd, V4L2 through vivid, the units under systemd) while
# kvmd-vmhost drives the guest's nginx from the host (auth goldens, restart under load).
#
#   tests/vm/rig.sh [BIN_DIR]       (default target/debug)
#
# Environment:
#   KVMD_SKIP_VM=1         skip, saying so (for machines that cannot run QEMU); never silent
#   KVMD_VM_CACHE=DIR      cache (kernel, root file system; ~1 GB), default /var/tmp/kvmd-vm
#   KVMD_VM_KERNEL=PKG     kernel package, default the pinned linux-image-6.1.0-57-amd64
#   KVMD_VM_ACCEL=tcg|kvm  default: kvm only where /dev/kvm is real VMX/SVM, else tcg
#
# Needs root (mmdebstrap --mode=root, 9p with security_model=none); uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ "${KVMD_SKIP_VM:-}" = 1 ]; then
    echo "test-vm: SKIPPED because KVMD_SKIP_VM=1: the real-kernel tests (gadget, V4L2, systemd) did not run"
    exit 0
fi
cannot() {
    echo "test-vm: cannot run the real-kernel tests here: $*." >&2
    echo "test-vm: to run every other test without them, set KVMD_SKIP_VM=1 (README, \"Real-kernel tests\")." >&2
    exit 1
}
if [ "$(id -u)" != 0 ]; then
    command -v sudo > /dev/null && sudo -n true 2> /dev/null || cannot "it needs root (or password-less sudo)"
    exec sudo -E "$0" "$@"
fi

bin_dir=$(cd "${1:-target/debug}" && pwd)
cache=${KVMD_VM_CACHE:-/var/tmp/kvmd-vm}
# The pinned kernel: Debian 12's linux-image-amd64 pointed at this ABI (6.1.192-3) when it was
# chosen. To move forward: KVMD_VM_KERNEL=linux-image-6.1.0-<abi>-amd64 (apt-cache depends
# linux-image-amd64 names the current one), run `just test-vm`, and change the default here.
kernel_pkg=${KVMD_VM_KERNEL:-linux-image-6.1.0-57-amd64}
t_start=$SECONDS
step() { echo "test-vm: [$((SECONDS - t_start)) s] $*"; }

# --- host packages -------------------------------------------------------------------------
deps() {
    local pkgs=() qemu_target=()
    command -v mmdebstrap > /dev/null || pkgs+=(mmdebstrap)
    [ -x /bin/busybox ] && file_is_static /bin/busybox || pkgs+=(busybox-static)
    command -v cpio > /dev/null || pkgs+=(cpio)
    command -v depmod > /dev/null || pkgs+=(kmod)
    command -v mkfs.ext4 > /dev/null || pkgs+=(e2fsprogs)
    command -v xz > /dev/null || pkgs+=(xz-utils)
    if ! command -v qemu-system-x86_64 > /dev/null; then
        pkgs+=(qemu-system-x86)
        # bookworm's own qemu-system-x86 (7.2) breaks a backported qemu-utils: take both
        # from bookworm-backports then (Debian's own archive).
        if dpkg-query -W -f '${Version}' qemu-utils 2> /dev/null | grep -q '~bpo12'; then
            qemu_target=(-t bookworm-backports)
            if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
                printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                    > /etc/apt/sources.list.d/bookworm-backports.sources
            fi
        fi
    fi
    if [ "${#pkgs[@]}" -gt 0 ]; then
        step "installing ${pkgs[*]}"
        apt-get update -qq || cannot "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${qemu_target[@]}" "${pkgs[@]}" \
            > /dev/null || cannot "apt-get install ${pkgs[*]} failed"
    fi
    command -v qemu-system-x86_64 > /dev/null || cannot "no qemu-system-x86_64"
}
file_is_static() { ! ldd "$1" > /dev/null 2>&1; }

# --- kernel: the .deb unpacked (not installed), vmlinux extracted for a fast PVH boot --------
kernel() {
    kdir=$cache/kernel/$kernel_pkg
    if [ ! -e "$kdir/.done" ]; then
        step "kernel: $kernel_pkg"
        rm -rf "$kdir" "$cache/debs"
        mkdir -p "$kdir" "$cache/debs"
        apt-cache show "$kernel_pkg" > /dev/null 2>&1 || apt-get update -qq || true
        (cd "$cache/debs" && apt-get download "$kernel_pkg" 2> /dev/null) \
            || cannot "apt-get download $kernel_pkg failed (the archive moved on? set KVMD_VM_KERNEL, see tests/vm/rig.sh)"
        dpkg-deb -x "$cache"/debs/"$kernel_pkg"_*.deb "$kdir"
        kver=$(ls "$kdir/lib/modules")
        depmod -b "$kdir" "$kver"
        # The bzImage's own xz decompression costs ~3 s under TCG: boot the ELF inside it.
        local z=$kdir/boot/vmlinuz-$kver off
        off=$(LC_ALL=C grep -aboP '\xFD7zXZ\x00' "$z" | head -1 | cut -d: -f1)
        tail -c +$((off + 1)) "$z" | xz -dc --single-stream > "$kdir/boot/vmlinux-$kver" 2> /dev/null || true
        [ "$(head -c 4 "$kdir/boot/vmlinux-$kver" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] \
            || cannot "could not extract vmlinux from $z"
        touch "$kdir/.done"
    fi
    kver=$(ls "$kdir/lib/modules")
}

# Module paths (relative to lib/modules/KVER) of MODULES and their dependencies, in load order.
closure() {
    for m in "$@"; do modprobe -d "$kdir" -S "$kver" --show-depends "$m"; done \
        | awk '$1 == "insmod" { print $2 }' | sed "s#^.*/lib/modules/$kver/##" | awk '!seen[$0]++'
}
copy_modules() { # DEST_ROOT MODULES...
    local dest=$1; shift
    closure "$@" | while read -r m; do
        install -D -m 0644 "$kdir/lib/modules/$kver/$m" "$dest/lib/modules/$kver/$m"
    done
    cp "$kdir/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$dest/lib/modules/$kver/"
    depmod -b "$dest" "$kver"
}

# --- gpio-sim: the kernel's GPIO simulator, which Debian's config leaves out -----------------
# Built for the pinned kernel as an out-of-tree module from Debian's own packages (the
# headers, and two files of linux-source-6.1, which is the same source), cached beside the
# kernel; nothing of the kernel's source enters the project. Debian's config also lacks
# CONFIG_IRQ_SIM, so irq_sim.c goes into the same module; its one call through the
# unexported irq_to_desc becomes generic_handle_irq (the same dispatch).
gpio_sim() {
    local d=$cache/gpio-sim/$kver src_pkg kver_ver src_ver
    gpio_sim_ko=$d/gpio-sim.ko
    [ -e "$d/.done" ] && return
    step "gpio-sim: building it for $kver (linux-source + linux-headers-$kver)"
    rm -rf "$d"
    mkdir -p "$d/debs" "$d/src" "$d/build"
    src_pkg=linux-source-$(echo "$kver" | cut -d. -f1-2)
    if [ ! -e "/usr/src/linux-headers-$kver/Makefile" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "linux-headers-$kver" make gcc \
            > /dev/null || cannot "apt-get install linux-headers-$kver failed"
    fi
    # The source of exactly the kernel's version: gpio-sim reads gpiolib.h's struct
    # gpio_device, which must match the running kernel's. (When the archive drops that
    # version, move the pinned kernel forward: see kernel_pkg above.)
    kver_ver=$(dpkg-deb -f "$cache"/debs/"$kernel_pkg"_*.deb Version) || cannot "no version in $kernel_pkg's .deb"
    (cd "$d/debs" && apt-get download "$src_pkg=$kver_ver" 2> /dev/null) \
        || cannot "apt-get download $src_pkg=$kver_ver failed (the archive moved on? move KVMD_VM_KERNEL forward)"
    src_ver=$(dpkg-deb -f "$d"/debs/"$src_pkg"_*.deb Version)
    [ "$kver_ver" = "$src_ver" ] || cannot "$src_pkg is $src_ver, the kernel $kver_ver"
    # The tarball is multi-block xz: decompressed on every core.
    dpkg-deb --fsys-tarfile "$d"/debs/"$src_pkg"_*.deb \
        | tar -xO "./usr/src/$src_pkg.tar.xz" \
        | xz -dc -T0 \
        | tar -x -C "$d/src" --strip-components=1 \
            "$src_pkg/drivers/gpio/gpio-sim.c" "$src_pkg/drivers/gpio/gpiolib.h" "$src_pkg/kernel/irq/irq_sim.c" \
        || cannot "could not extract gpio-sim from $src_pkg"
    cp "$d/src/drivers/gpio/gpio-sim.c" "$d/build/gpio-sim-main.c"
    cp "$d/src/drivers/gpio/gpiolib.h" "$d/src/kernel/irq/irq_sim.c" "$d/build/"
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$d/build/irq_sim.c"
    grep -q 'generic_handle_irq(irqnum);' "$d/build/irq_sim.c" || cannot "irq_sim.c changed: the irq_to_desc patch no longer applies"
    printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' > "$d/build/Kbuild"
    make -s -C "/usr/src/linux-headers-$kver" M="$d/build" modules > "$d/build.log" 2>&1 \
        || { cat "$d/build.log" >&2; cannot "gpio-sim did not build"; }
    if grep -q 'undefined!' "$d/build.log"; then
        cat "$d/build.log" >&2
        cannot "gpio-sim uses symbols $kver does not export"
    fi
    case "$(modinfo -F vermagic "$d/build/gpio-sim.ko")" in
        "$kver "*) ;;
        *) cannot "gpio-sim.ko was built for another kernel: $(modinfo -F vermagic "$d/build/gpio-sim.ko")" ;;
    esac
    cp "$d/build/gpio-sim.ko" "$gpio_sim_ko"
    rm -rf "$d/debs" "$d/src"
    touch "$d/.done"
}

# --- initramfs: busybox, the boot drivers, tests/vm/guest/init ---------------------------------
boot_modules=(virtio_pci virtio_blk virtio_net 9pnet_virtio 9p crc32c_generic ext4)
initramfs() {
    local ir=$run/initramfs
    rm -rf "$ir"
    mkdir -p "$ir"/{bin,sbin,dev,proc,sys,newroot}
    cp /bin/busybox "$ir/bin/"
    for a in sh mount umount insmod sleep switch_root poweroff; do ln -s busybox "$ir/bin/$a"; done
    ln -s ../bin/busybox "$ir/sbin/modprobe" # the kernel's request_module runs this path
    copy_modules "$ir" "${boot_modules[@]}"
    closure "${boot_modules[@]}" | sed "s#^#$kver/#" > "$ir/modules.list"
    install -m 0755 tests/vm/guest/init "$ir/init"
    (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$run/initramfs.cpio.gz"
}

# --- root file system: Debian 12 minbase + nginx (cached), then the suite, fresh each run ----
rootfs_pkgs=systemd,systemd-sysv,udev,dbus,kmod,iproute2,procps,nginx,curl,jq,openssl,v4l-utils,libxkbcommon0,xkb-data,genisoimage
rig_modules=(configfs libcomposite usb_f_hid usb_f_mass_storage dummy_hcd usbhid hid_generic evdev vivid
    usb-storage sd_mod sr_mod isofs)
rootfs() {
    local key base mirror root=$run/rootfs
    key=$(echo "$rootfs_pkgs" | sha256sum | head -c 12)
    base=$cache/rootfs-$key
    if [ ! -e "$base/.rig-done" ]; then
        mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2> /dev/null | head -1)
        step "root file system: mmdebstrap bookworm (${mirror:-http://deb.debian.org/debian})"
        rm -rf "$base" "$base.tmp"
        mmdebstrap --quiet --variant=minbase --mode=root --include="$rootfs_pkgs" \
            --customize-hook='echo kvmd-vm > "$1/etc/hostname"' \
            --customize-hook='chroot "$1" passwd -d root' \
            --customize-hook='chroot "$1" systemctl mask nginx.service serial-getty@ttyS0.service getty@tty1.service' \
            bookworm "$base.tmp" "${mirror:-http://deb.debian.org/debian}" || cannot "mmdebstrap failed"
        mv "$base.tmp" "$base"
        touch "$base/.rig-done"
    fi
    rm -rf "$root"
    cp -a "$base" "$root"
    copy_modules "$root" "${rig_modules[@]}"
    install -D -m 0644 "$gpio_sim_ko" "$root/lib/modules/$kver/extra/gpio-sim.ko"
    depmod -b "$root" "$kver"
    # The suite as a device gets it: its .deb, installed by dpkg (maintainer scripts
    # chrooted: users and groups, empty secrets, units enabled).
    local deb
    deb=$(scripts/package.sh --bin-dir "$bin_dir" --out "$run/debs" --fast)
    if ! dpkg --root="$root" -i "$deb" > "$run/dpkg.log" 2>&1; then
        cat "$run/dpkg.log" >&2
        echo "test-vm: FAIL: dpkg -i $(basename "$deb") in the guest's root" >&2
        exit 1
    fi
    install -m 0755 "$bin_dir/kvmd-vmprobe" "$root/usr/local/bin/"
    # The rig's hardware: vivid with a webcam (input 0) and an HDMI input (1); dummy_hcd as
    # the UDC. (Input 1 matters: a source-change event carries its input as the id.)
    echo "options vivid n_devs=1 node_types=0x1 num_inputs=2 input_types=0xc" > "$root/etc/modprobe.d/kvmd-vm.conf"
    printf '%s\n' dummy_hcd vivid usbhid hid_generic evdev usb_f_mass_storage usb-storage sd_mod sr_mod isofs > "$root/etc/modules-load.d/kvmd-vm.conf"
    # The streamer selects the HDMI input 1 (S_INPUT) and follows its signal; a drop-in
    # (<file>.d) on top of deploy's config.
    mkdir -p "$root/etc/kvmd/streamer.toml.d"
    printf '[source]\ninput = 1\ndv_timings = true\n\n[params]\ndesired_fps = 10\n' > "$root/etc/kvmd/streamer.toml.d/vm.toml"
    echo "rigshare /mnt/share 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0" >> "$root/etc/fstab"
    mkdir -p "$root/mnt/share"
    install -m 0644 tests/vm/guest/rig-test.service "$root/etc/systemd/system/"
    systemctl --root="$root" enable rig-test.service > /dev/null 2>&1
    # Sized by what it holds (debug binaries grow) plus room for the tests' writes: a fixed
    # 1 GiB filled up once the suite's debug build passed 900 MiB, and every write failed.
    local size_mb
    size_mb=$(($(du -sm "$root" | cut -f1) + 768))
    mkfs.ext4 -q -F -L kvmd-vm -d "$root" "$run/rootfs.ext4" "${size_mb}M"
}

accel() {
    case "${KVMD_VM_ACCEL:-}" in
        tcg) echo "-accel tcg,thread=multi -cpu max" ;;
        kvm) echo "-accel kvm -cpu host,-arch-capabilities" ;;
        *) # /dev/kvm can be a software nested-virtualisation device (kvm_pvm) that cannot run
           # this kernel (VM-RIG.md): KVM only with real VMX/SVM.
            if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -e /sys/module/kvm_pvm ]; then
                echo "-accel kvm -cpu host,-arch-capabilities"
            else
                echo "-accel tcg,thread=multi -cpu max"
            fi ;;
    esac
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

main() {
    for b in kvmd-vmprobe kvmd-vmhost; do
        [ -x "$bin_dir/$b" ] || cannot "$bin_dir/$b is missing (just build)"
    done
    deps
    mkdir -p "$cache"
    run=$cache/run
    rm -rf "$run"
    mkdir -p "$run/share"
    kernel
    gpio_sim
    initramfs
    rootfs
    install -m 0755 tests/vm/guest/run.sh "$run/share/run.sh"
    local port acc
    port=$(free_port)
    acc=$(accel)
    step "booting $kver ($acc), guest nginx on https://127.0.0.1:$port"
    # shellcheck disable=SC2086
    timeout 420 qemu-system-x86_64 $acc -M q35 -m 1024 -smp 2 -nographic -no-reboot \
        -kernel "$kdir/boot/vmlinux-$kver" -initrd "$run/initramfs.cpio.gz" \
        -drive "file=$run/rootfs.ext4,format=raw,if=virtio,snapshot=on" \
        -virtfs "local,path=$run/share,mount_tag=rigshare,security_model=none,id=rigshare" \
        -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:443" \
        -device virtio-net-pci,netdev=n0,romfile= \
        -append "console=ttyS0 panic=-1 quiet loglevel=3 systemd.show_status=0" \
        < /dev/null > "$run/console.log" 2>&1 &
    local qemu=$! host_rc=0 qemu_rc=0
    "$bin_dir/kvmd-vmhost" --url "https://127.0.0.1:$port" --share "$run/share" --qemu-pid "$qemu" || host_rc=$?
    wait "$qemu" || qemu_rc=$?
    echo
    cat "$run/share/guest.log" 2> /dev/null || { echo "test-vm: the guest wrote no report; console:"; tail -40 "$run/console.log"; }
    echo
    local verdict
    verdict=$(cat "$run/share/guest-result" 2> /dev/null || echo none)
    step "guest: $verdict, host: $([ $host_rc = 0 ] && echo pass || echo fail), qemu exit $qemu_rc (console: $run/console.log)"
    [ "$verdict" = pass ] && [ "$host_rc" = 0 ] && [ "$qemu_rc" = 0 ]
}
main
