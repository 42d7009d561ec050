#!/usr/bin/env bash
# demo.sh: record this machine for a few seconds while a small workload runs,
# then show what the snapshot holds and its histograms. Run through
# `sudo make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "demo: recording the kernel needs root: sudo make demo" >&2
	exit 1
fi
out=$(mktemp -d /tmp/rewind-demo.XXXXXX)
rec=""
cleanup() {
	if [ -n "$rec" ] && kill -0 "$rec" 2>/dev/null; then kill -INT "$rec"; wait "$rec" || true; fi
}
trap cleanup EXIT

bin/rewind record --duration 5s --buffer-size 16MiB --output "$out" >"$out/record.out" 2>"$out/record.err" &
rec=$!
for _ in $(seq 100); do
	grep -q recording "$out/record.err" 2>/dev/null && break
	kill -0 "$rec" 2>/dev/null || { cat "$out/record.err" >&2; exit 1; }
	sleep 0.1
done
echo "== recording (the workload runs for about 3 s)"
cat "$out/record.err"

# The workload: processes that fork and exec, a pipe ping-pong, short sleeps
# and file I/O, so every event type shows up.
for i in $(seq 40); do ls /usr/bin >/dev/null; done
for i in $(seq 20); do sleep 0.01; done
dd if=/dev/zero of="$out/data" bs=64k count=256 conv=fsync status=none
head -c 32M /dev/urandom | gzip -1 >/dev/null
if command -v perf >/dev/null; then perf bench sched pipe -l 20000 >/dev/null 2>&1 || true; fi
rm -f "$out/data"

wait "$rec"
rec=""
cat "$out/record.out"
snap=$(ls "$out"/*.rwd | head -1)
echo
echo "== bin/rewind info $snap"
bin/rewind info "$snap"
echo
# view dies of SIGPIPE when head stops reading, as cat would.
set +o pipefail
echo "== bin/rewind view $snap | head -15"
bin/rewind view "$snap" | head -15
echo
echo "== the workload's dd, as it started: bin/rewind view --event sched_process_exec,sys_enter,sys_exit $snap | grep -m 10 ' dd '"
bin/rewind view --event sched_process_exec,sys_enter,sys_exit "$snap" | grep -m 10 ' dd ' || true
echo
echo "== the histograms and counters: bin/rewind analyze --only runq_latency,syscall_latency,bio_latency,processes,counters --top 5 $snap"
bin/rewind analyze --only runq_latency,syscall_latency,bio_latency,processes,counters --top 5 "$snap"
echo
echo "The snapshot stays in $out: bin/rewind analyze $snap shows every analysis."
