#!/bin/busybox sh
# Guest /init for `cargo xtask vm-test`. Stage 1 runs as PID 1 in the
# busybox-only initramfs, mounts the host root and switch_roots into it;
# stage 2 (this script again, copied to /run/nono-vm) runs the command.
# The host fills in /nono-vm/config (shell variables) and /nono-vm/cmd.sh.
if [ "$1" = stage2 ]; then
    # PID 1 inside the host root; only /run/nono-vm/busybox is ours.
    bb=/run/nono-vm/busybox
    . /run/nono-vm/config
    /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 PATH="$GUEST_PATH" \
        /bin/sh /run/nono-vm/cmd.sh
    status=$?
    echo
    echo "NONO-VM-EXIT-${NONCE}=${status}"
    $bb sync
    $bb poweroff -f
    $bb sleep 10
fi

/bin/busybox --install -s /bin
export PATH=/bin
. /nono-vm/config
echo "NONO-VM-BOOTED-${NONCE}"

fail() {
    echo "nono-vm: $*"
    echo "NONO-VM-EXIT-${NONCE}=125"
    poweroff -f
    sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Modules (virtiofs on kernels that build it as a module), in dependency order.
for ko in $MODULES; do
    insmod "/nono-vm/modules/$ko" || fail "insmod $ko failed"
done

# A freshly loaded virtiofs module may not have probed the device yet.
tries=0
until mount -t virtiofs -o ro hostroot /newroot; do
    tries=$((tries + 1))
    if [ $tries -ge 10 ]; then
        dmesg | tail -20
        fail "mounting the host root over virtiofs failed"
    fi
    sleep 0.5
done

R=/newroot
mount -t proc proc $R/proc || fail "proc"
mount -t sysfs sysfs $R/sys || fail "sysfs"
mount -t devtmpfs devtmpfs $R/dev || fail "devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
# What udev sets up on a real system: a script run through a descriptor
# (fexecve) is read by its interpreter as /dev/fd/N.
ln -sf /proc/self/fd $R/dev/fd
mount -t devpts devpts $R/dev/pts 2>/dev/null
mount -t tmpfs tmpfs $R/dev/shm 2>/dev/null
mount -t securityfs securityfs $R/sys/kernel/security || fail "securityfs"
mount -t tracefs tracefs $R/sys/kernel/tracing || echo "nono-vm: no tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || echo "nono-vm: no debugfs"
mount -t bpf bpf $R/sys/fs/bpf || fail "bpffs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
# The workspace may itself live under /tmp (a CI clone often does); keep a
# handle on it before the scratch tmpfs mounts hide it, then put it back.
mkdir -p /keep
mount -o bind "$R$WORKSPACE" /keep || fail "bind-mounting the workspace $WORKSPACE"
for d in /tmp /root /run /var/tmp; do
    [ -d "$R$d" ] && { mount -t tmpfs -o mode=1777 tmpfs "$R$d" || fail "tmpfs on $d"; }
done
if [ ! -e "$R$WORKSPACE/Cargo.toml" ]; then
    mkdir -p "$R$WORKSPACE" || fail "recreating $WORKSPACE"
    mount -o move /keep "$R$WORKSPACE" || fail "moving the workspace back to $WORKSPACE"
else
    umount /keep
fi
# /etc as a tmpfs copy: the tests add ordinary users (useradd) to run nono as.
mkdir -p /etc-copy
mount -t tmpfs -o mode=755 tmpfs /etc-copy || fail "tmpfs for /etc"
cp -a "$R/etc/." /etc-copy/ || fail "copying /etc"
mount -o move /etc-copy "$R/etc" || fail "moving the /etc copy into place"
[ -d "$R$WRITABLE" ] || fail "$WRITABLE missing in the guest"
mount -t tmpfs -o mode=1777 tmpfs "$R$WRITABLE" || fail "tmpfs on $WRITABLE"
chmod 700 $R/root

ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

mkdir -p $R/run/nono-vm
cp /nono-vm/cmd.sh /nono-vm/config /init /bin/busybox $R/run/nono-vm/
echo "nono-vm: kernel $(uname -r), lsm=$(cat $R/sys/kernel/security/lsm)"

# switch_root, not chroot: the host root must be the namespace's real root,
# or kernel-side path walks (BPF d_path-style) see the /newroot prefix.
exec switch_root $R /run/nono-vm/busybox sh /run/nono-vm/init stage2
fail "switch_root failed"
