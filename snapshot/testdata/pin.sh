#!/bin/bash
# pin.sh records a small snapshot to pin a format version (pinned_test.go),
# as root, with the rewind binary of that version:
#
#   unshare --pid --fork --mount-proc ./pin.sh REWIND OUTDIR RECORD-FLAGS...
#
# v1.0.rwd: rewind built from ddd44e5 (the parent of 30ee4e5, which added
#           format 1.1), flags --events sched,syscalls,process
#           --buffer-size 64KiB --duration 1s
# v1.1.rwd: rewind built from the tree at 27d51b5, flags --events
#           sched,syscalls,process --buffer-size 128KiB --duration 1s
#           --counters cpu,memory --stacks 99
#
# The workload (awk spinning, a shell starting sleep ten times a second)
# runs in a cgroup of its own and rewind records only that cgroup. The new
# PID namespace gives /proc, and so the process table, only these
# processes; the kernel reports the workload's pids in the initial
# namespace, so the symbols section holds kernel symbols but no process
# mappings, and frames in the workload's binaries stay addresses.
set -e
BIN=$1
OUT=$2
shift 2
CG=/sys/fs/cgroup/unified/rewind-pin
[ -d /sys/fs/cgroup/unified ] || CG=/sys/fs/cgroup/rewind-pin
mkdir -p $CG
bash -c 'echo $$ > '$CG'/cgroup.procs; awk "BEGIN{while(1);}" & while :; do sleep 0.1; done' &
W=$!
sleep 0.5
"$BIN" record --cgroup $CG --output "$OUT" "$@" || true
pkill -P $W || true
kill $W || true
wait $W 2>/dev/null || true
sleep 0.2
rmdir $CG
