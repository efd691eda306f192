#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Builds isc.ko, isc_sample.ko and the hostile test for one Debian kernel,
# boots that kernel in qemu (TCG) with a busybox initramfs, loads the
# modules, runs the hostile test, unloads the modules and scans the kernel
# log for warnings. Prints the serial console; exits 0 only if the test
# passed, rmmod worked and the log is clean.
#
#   driver/tests/vm-smoke.sh <kernel-release>   e.g. 6.1.0-56-cloud-amd64
#
# Needs: linux-image-<release>, linux-headers-<release>, qemu-system-x86,
# busybox-static, cpio, gcc.
set -eu

ver=${1:?kernel release, e.g. 6.1.0-56-cloud-amd64}
here=$(cd "$(dirname "$0")/.." && pwd)
kdir=/usr/src/linux-headers-$ver
vmlinuz=/boot/vmlinuz-$ver
work=$(mktemp -d "${TMPDIR:-/tmp}/isc-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Build in a copy: out-of-tree builds for two kernels must not share objects.
mkdir -p "$work/src"
cp -r "$here/Kbuild" "$here/Makefile" "$here/include" "$here/src" "$here/sample" "$work/src/"
[ -d "$here/testdrv" ] && cp -r "$here/testdrv" "$work/src/"
make -s -C "$work/src" KDIR="$kdir" W=1 modules >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
grep -i "warning" "$work/build.log" && { echo "build warnings"; exit 1; }
gcc -static -O2 -Wall -Wextra -pthread -I "$here/include" -o "$work/hostile" "$here/tests/hostile.c"

root=$work/root
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
cp "$work/src/isc.ko" "$work/src/isc_sample.ko" "$work/hostile" "$root/"
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t debugfs none /sys/kernel/debug
echo 8 >/proc/sys/kernel/printk
dmesg -c >/dev/null
insmod /isc.ko && insmod /isc_sample.ko && echo "VM: modules loaded"
ls -l /dev/isc
/hostile /isc_sample.ko
echo "VM: hostile rc=$?"
# Again with the sample posting every millisecond (from hard IRQ context),
# so that posts race with closes, unbinds and KICKs.
rmmod isc_sample && insmod /isc_sample.ko period_ms=1 && /hostile
echo "VM: hostile-fast rc=$?"
rmmod isc_sample && rmmod isc && echo "VM: rmmod ok"
if dmesg | grep -E "WARNING:|BUG:|Oops|general protection|possible circular|possible recursive|UBSAN:|KFENCE:|KASAN:|use-after-free|refcount_t:|list_add corruption|list_del corruption|Call Trace|kernel BUG|Redzone|Poison overwritten|Object padding|INFO: task"; then
	echo "VM: dmesg dirty"
else
	echo "VM: dmesg clean"
fi
dmesg | tail -n 20
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.gz"

timeout 900 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 512 -nographic -no-reboot \
	-kernel "$vmlinuz" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet slub_debug=FZPU init_on_free=1 page_poison=1 kfence.sample_interval=1" \
	| tee "$work/console.log"

[ "$(grep -c "^hostile: .* 0 failed" "$work/console.log")" = 2 ] &&
	grep -q "VM: hostile rc=0" "$work/console.log" &&
	grep -q "VM: hostile-fast rc=0" "$work/console.log" &&
	grep -q "VM: rmmod ok" "$work/console.log" &&
	grep -q "VM: dmesg clean" "$work/console.log"
