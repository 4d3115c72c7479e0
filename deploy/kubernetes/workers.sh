#!/usr/bin/env bash
# Runs CELLBLOCK_WORKERS copies of a command (default: `cellblock worker`) in one container; 0 or
# unset: one per CPU this process may run on. cellblock.yaml runs it after worker-in-container.sh.
# Why one container runs them all: the jail counts its run slots (and so the sandboxes' host uids)
# in its state dir, shared only by processes of one mount namespace; a node must run ONE worker
# pod, with all its workers, as `cellblock up` or cellblock-worker@{1..N} do on a host.
# SIGTERM (or SIGINT) goes to every worker: each finishes its job in hand (CELLBLOCK_DRAIN_TIMEOUT)
# and the script exits 0 once all have. A worker that exits by itself stops the others the same
# way and the script exits with its status: the kubelet restarts the container, the usual
# supervisor of a pod's processes (a worker quits, e.g., when its Redis primary dies).
# Needs bash 5.1 (wait -n with ids): Debian 12's, the image's.
set -u
count=${CELLBLOCK_WORKERS:-0}
case $count in
    '' | *[!0-9]*)
        echo "workers.sh: CELLBLOCK_WORKERS=$count is not a number of workers" >&2
        exit 2
        ;;
esac
[ "$count" -gt 0 ] || count=$(nproc)
[ $# -gt 0 ] || set -- cellblock worker

pids=()
declare -A told=()  # a worker gets SIGTERM once: RQ takes a second one as "drop the job in hand"
stopping=0
stop() {
    local pid
    for pid in "${pids[@]}"; do
        [ -n "${told[$pid]:-}" ] || { kill -TERM "$pid" 2>/dev/null; told[$pid]=1; }
    done
}
trap 'stopping=1; stop' TERM INT
for ((i = 0; i < count && !stopping; i++)); do
    "$@" &
    pids+=("$!")
done
echo "workers.sh: $count x $*: pids ${pids[*]}" >&2

wait -n "${pids[@]}"  # returns when a worker exits, or after the trap ran
status=$?
trap '' TERM INT  # stopping now: a second signal must not cut the wait for the jobs in hand
[ "$stopping" -eq 1 ] || echo "workers.sh: a worker exited with $status: stopping the others" >&2
stop  # again after a signal: a worker started while the trap ran was not told yet
wait "${pids[@]}"
[ "$stopping" -eq 1 ] && exit 0
exit "$status"
