#!/usr/bin/env bash
# deps.sh TOOLSET... installs the Debian packages a make target needs, only
# when something is missing. Toolsets: bpf (clang, llvm-strip, libbpf
# headers, bpftool), test (what tests run: ip, unshare, promtool, systemd-analyze,
# prometheus-alertmanager), perf
# (perf, for benchmarks and ground truth).
set -euo pipefail

pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
for set in "$@"; do
	case "$set" in
	bpf)
		have clang || pkgs+=(clang)
		have llvm-strip || pkgs+=(llvm)
		[ -f /usr/include/bpf/bpf_helpers.h ] || pkgs+=(libbpf-dev)
		have bpftool || pkgs+=(bpftool)
		;;
	test)
		have ip || pkgs+=(iproute2)
		have unshare || pkgs+=(util-linux)
		have promtool || pkgs+=(prometheus)
		have prometheus-alertmanager || pkgs+=(prometheus-alertmanager)
		have systemd-analyze || pkgs+=(systemd)
		have gdb || pkgs+=(gdb)
		;;
	perf)
		have perf || pkgs+=(linux-perf)
		;;
	kernels)
		have qemu-system-x86_64 || pkgs+=(qemu-system-x86)
		# The busybox package's /bin/busybox is dynamic; an initramfs needs
		# busybox-static's.
		dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || pkgs+=(busybox-static)
		;;
	*)
		echo "deps.sh: unknown toolset $set" >&2
		exit 2
		;;
	esac
done
[ ${#pkgs[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" != 0 ]; then
	if have sudo; then sudo=sudo; else
		echo "deps.sh: need root to install ${pkgs[*]} (or install them yourself)" >&2
		exit 1
	fi
fi
echo "deps.sh: installing ${pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
if [[ " ${pkgs[*]} " == *" qemu-system-x86 "* ]] && ! qemu-system-x86_64 --version >/dev/null; then
	echo "deps.sh: qemu-system-x86_64 was installed but does not run" >&2
	exit 1
fi
# The tests want promtool, not the Prometheus server the package starts
# where systemd runs: stop and disable the service this install started.
if [[ " ${pkgs[*]} " == *" prometheus "* ]] && have systemctl && systemctl is-active -q prometheus 2>/dev/null; then
	$sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
# Likewise the Alertmanager service: the tests run their own.
if [[ " ${pkgs[*]} " == *" prometheus-alertmanager "* ]] && have systemctl && systemctl is-active -q prometheus-alertmanager 2>/dev/null; then
	$sudo systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
fi
