# rewind. Works as root or under sudo; `make test` and `make demo` install
# what they need.

# sudo's secure_path usually leaves Go out.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export CGO_ENABLED := 0
export GOFLAGS := -buildvcs=false
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/rewindtrace/rewind/cmd/rewind/app.Version=$(VERSION)
SOURCES := $(shell find . -name '*.go' -not -path './.git/*') go.mod go.sum $(wildcard bpf/*.o)

.PHONY: all build test test-kernels generate vmlinux demo bench lint deps clean

all: build

build: bin/rewind

bin/rewind: $(SOURCES)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/rewind

deps:
	scripts/deps.sh bpf test
	$(GO) mod download

# The BPF objects and the syscall tables are generated and committed, so a
# build needs no clang; this rebuilds them (TestGeneratedUpToDate checks
# they are current).
generate:
	scripts/deps.sh bpf
	$(GO) generate ./bpf/ ./internal/syscalls/

# vmlinux.h is taken from the running kernel's BTF; see bpf/include/README.md.
vmlinux:
	scripts/deps.sh bpf
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/vmlinux.h

# -p 1: kernel tests in different packages must not record each other's
# workloads (they would overwrite each other's rings). Then the recorder's
# tests again on the BPF object for kernels without fetching atomics (5.10)
# and on the raw tracepoint programs for kernels without BTF (the kernel's
# own BTF read as a --btf file), and the types that many goroutines drive,
# under the race detector: the daemon's packages run only there.
test: deps lint
	REWIND_CHECK_GENERATED=1 $(GO) test -p 1 -count=1 -timeout 15m $$($(GO) list ./... | grep -v /daemon)
	REWIND_TEST_COMPAT=1 $(GO) test -p 1 -count=1 -timeout 10m ./record/
	REWIND_TEST_BTF=/sys/kernel/btf/vmlinux $(GO) test -p 1 -count=1 -timeout 10m ./record/
	CGO_ENABLED=1 $(GO) test -race -p 1 -count=1 -timeout 10m -run 'Concurrent|Race|Sampler|Kernel' ./record/ ./record/counters/ ./record/symbols/
	CGO_ENABLED=1 $(GO) test -race -p 1 -count=1 -timeout 10m ./daemon/...
	$(GO) run ./test/kernels -set ci

# Boots rewind under qemu on Debian's 5.10, 6.1, 6.12 and newest kernels
# (test/kernels/README.md); `make test` boots the oldest and the newest.
test-kernels:
	$(GO) run ./test/kernels -set all

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: build
	scripts/demo.sh

bench: build
	scripts/deps.sh perf
	$(GO) run ./bench/pipe $(BENCHFLAGS)

clean:
	rm -rf bin
