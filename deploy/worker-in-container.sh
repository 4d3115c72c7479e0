#!/bin/sh
# Starts a cellblock worker (or the command given) in an unprivileged container on a cgroup v2
# node, after undoing the two things a container runtime does that the jail cannot work with.
# Needs CAP_SYS_ADMIN in the container (README: "Deploying on cgroup v2" lists every privilege).
#  1. The cgroupfs is mounted read-only unless the container is privileged. The jail must make
#     its run cgroups below the container's own group; the cgroup namespace (and nsdelegate)
#     still confine it to that subtree.
#  2. /proc is masked (files such as /proc/kcore bound over). The kernel lets a sandbox mount its
#     own fresh /proc only when a fully visible proc is mounted in the mount namespace it came
#     from: one more proc instance of the container's pid namespace, which no sandbox can reach.
set -eu
if awk '$5 == "/sys/fs/cgroup" && $6 ~ /(^|,)ro(,|$)/ { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    # Only at the root of a cgroup namespace: without one, read-write would open the node's tree.
    if [ "$(cat /proc/self/cgroup)" != "0::/" ]; then
        echo "worker-in-container: no cgroup namespace (cgroupns=host?): not making /sys/fs/cgroup writable" >&2
        exit 1
    fi
    mount -o remount,bind,rw,nosuid,nodev,noexec /sys/fs/cgroup  # this mount only, not the superblock
fi
state=${CELLBLOCK_JAIL_DIR:-/run/cellblock}
[ -d "$state" ] || mkdir -p -m 0711 "$state"
mkdir -p "$state/proc"
if ! awk -v m="$state/proc" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    mount -t proc -o nosuid,nodev,noexec proc "$state/proc"
fi
[ $# -gt 0 ] || set -- cellblock worker
exec "$@"
