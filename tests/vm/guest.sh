#!/bin/bash
# PID 1 of the pure cgroup v2 test host, after the initramfs: mounts what a booted Debian
# has (proc, sys, cgroup2 alone at /sys/fs/cgroup as systemd mounts it, dev, a fresh /run;
# /tmp stays the overlay's, so a checkout under /tmp is seen), brings up loopback (there is
# no other interface), runs the command that tests/vm/run.py left in /xchg/command from
# /xchg/cwd, writes its exit status to /xchg/status and powers off. Whatever the command
# leaves behind dies with the VM.
set -u
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
ip link set lo up
hostname cellblock-v2

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
mapfile -d '' -t command </xchg/command
cd "$(cat /xchg/cwd)" || exit 1
echo "guest: $(uname -r), cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers), $(nproc) CPU, $(free -m | awk '/Mem:/ {print $2}') MiB"
"${command[@]}"
echo $? >/xchg/status
sync
echo o >/proc/sysrq-trigger
sleep 60
