#!/bin/busybox sh
# /init of the guest's initramfs (busybox sh; image.py bakes this file in, and
# its text is part of the image cache key).
#
# Boots into the host's own userland: host / read-only over virtio-9p with a
# tmpfs overlay (writes succeed and vanish at power-off), the directories listed
# in the job's `rw` file shared read-write, then chroots and runs the job's
# `cmd` script. The command's exit status goes to the job's `rc` file; console
# output (the command's stdout and stderr) reaches the host on the serial port.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# No CR before LF on the console: the host reads the output as plain text.
stty -F /dev/console -onlcr 2>/dev/null

die() {
    echo "guest-init: $*"
    echo 0 >/proc/sys/kernel/printk
    poweroff -f
}

# The 9p and overlay drivers first; the link types load while the mounts happen.
modprobe -a virtio_pci 9pnet_virtio 9p overlay || die "cannot load the 9p/overlay drivers"
# shellcheck disable=SC2046
modprobe -a $(cat /etc/guest-modules) &
loading=$!

opts=trans=virtio,version=9p2000.L,msize=512000
root=/newroot
mkdir -p /lower /upper $root
mount -t 9p -o "$opts,ro,cache=loose" hostroot /lower || die "cannot mount the host root"
mount -t tmpfs -o mode=755 upper /upper && mkdir /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay $root \
    || die "cannot overlay the host root"
mount -t proc proc $root/proc
mount -t sysfs sys $root/sys
mount -t devtmpfs dev $root/dev
mkdir -p $root/dev/pts $root/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $root/dev/pts
mount -t tmpfs -o mode=1777 shm $root/dev/shm
mount -t tmpfs -o mode=755 run $root/run
mount -t tmpfs -o mode=1777 tmp $root/tmp
mount -t cgroup2 cgroup2 $root/sys/fs/cgroup 2>/dev/null

job=/run/guest-job
mkdir -p $root$job && mount -t 9p -o "$opts,cache=mmap" job $root$job || die "cannot mount the job dir"
# rw: one "TAG<TAB>DIR" line per read-write share.
while IFS="	" read -r tag dir; do
    mkdir -p "$root$dir" && mount -t 9p -o "$opts,cache=loose" "$tag" "$root$dir" \
        || die "cannot mount $dir"
done <$root$job/rw

wait $loading || echo "guest-init: some link-type modules failed to load"
hostname multinic-guest
ip link set lo up
: >$root$job/started
chroot $root /bin/sh $job/cmd </dev/null
echo $? >$root$job/rc
cd /
sync
# Silence the kernel's shutdown chatter; it would land in the command's output.
echo 0 >/proc/sys/kernel/printk
poweroff -f
