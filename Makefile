# xdpban — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)
TRIPLE := $(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
export BPF_CFLAGS := -O2 -g -Wall -Werror -I/usr/include/$(TRIPLE)
BIN := bin/xdpban
PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
# Debian packages running needs (the fallback backends drive these tools),
# and what building the BPF object and the tests add (fail2ban is the
# peer the tests compare against; it is masked, never left running;
# systemd-journal-remote writes the journal files the journalmatch test
# reads with journalctl).
APT_RUN_PKGS := iproute2 iptables ipset
APT_PKGS := $(APT_RUN_PKGS) nftables clang llvm libbpf-dev linux-libc-dev bpftool fail2ban tzdata groff-base systemd-journal-remote
VERSION ?= $(shell cat VERSION)
LDFLAGS := -X github.com/xdpban/xdpban/internal/version.Version=$(VERSION)
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
ARCH ?= $(shell $(GO) env GOARCH)
DIST ?= dist
APT_BENCH_PKGS := xdp-tools netsniff-ng

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps-run: ## install only what running needs (Debian packages, bpffs)
	@PKGS="$(APT_RUN_PKGS)" ./packaging/apt-install
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

deps: ## install what building and testing need (Debian packages, bpffs)
	@PKGS="$(APT_PKGS)" ./packaging/apt-install
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

deps-bench: deps ## also install the peers the benchmarks compare against
	@missing=$$(for p in $(APT_BENCH_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
		echo "warning: could not install $$missing; the sections that need them will say so"; \
	fi

generate: deps ## rebuild the BPF object and Go bindings with bpf2go (needs clang)
	$(GO) generate ./loader/...

bench-xdp: ## per-packet cost of the XDP program, pass/drop x v4/v6 x 0/10k/1M bans (root)
	$(GO) test -run '^$$' -bench BenchmarkXDP -benchtime 2000000x -count 3 ./loader/

authlog: ## write the 1M-line benchmark auth.log (testdata/logs/auth-1m.log, deterministic)
	$(GO) run ./bench/loggen/cmd -n 1000000 > testdata/logs/auth-1m.log

bench-logwatch: authlog ## log matching on the 1M-line auth.log on one core: shipped sshd filter, and fail2ban's sshd.conf through xdpban's engine (make bench runs fail2ban-regex itself)
	XDPBAN_AUTHLOG=$(CURDIR)/testdata/logs/auth-1m.log GOMAXPROCS=1 $(GO) test -run '^$$' -bench 'BenchmarkAuthLog' -benchtime 1x -count 3 ./logwatch/

bench-follow: ## log follower vs nxadm/tail: lines lost/duplicated per rotation at 10k lines/s, lines/s
	$(GO) test -run '^$$' -bench 'BenchmarkFollow(Rotation|Throughput)$$' -benchtime 1x -count 3 ./logwatch/source/

bench-memory: ## failure tracking: peak RSS and heap with 1M distinct /64s below maxretry, default maxtracked vs unbounded
	$(GO) test -run '^$$' -bench 'BenchmarkWindowMillionAddresses' -benchtime 1x ./logwatch/

bench-daemon: ## ban latency: `xdpban ban` vs `fail2ban-client banip`, socket ban vs bare map add, log line to first drop (root)
	$(GO) test -run '^$$' -bench 'BenchmarkCLIBan|BenchmarkSocketBan|BenchmarkLogBanLatency' -benchtime 100x -count 3 ./cmd/xdpban/

bench: deps-bench build ## the side-by-side report against xdp-filter, fail2ban, iptables and ipset: bench/results.md and .json (root, under 15 min)
	$(GO) run ./bench -out bench -bin $(BIN)

build: ## build bin/xdpban (uses the committed BPF object; no clang needed)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/xdpban

test: deps ## run every test, privileged ones included (run as root)
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need 'gofmt -w':" $$unformatted >&2; exit 1; fi
	bash .ci/imports
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -count=1 -timeout 25m ./...

fault: deps ## the fault-injection tests alone (TestFault*: full disk, kill -9 under load, second daemon, failed start, map full; root); make test runs them too
	CGO_ENABLED=1 $(GO) test -count=1 -timeout 10m -run Fault ./...

imports: ## check the import rules between packages (.ci/imports)
	bash .ci/imports

fuzz: ## fuzz each parser for FUZZTIME (default 30s)
	@grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's/:func / /' | sort -u | \
	while read -r file spec; do \
		pkg=./$$(dirname $${file#./}); \
		echo "== $$spec in $$pkg"; $(GO) test -run '^$$' -fuzz "^$$spec$$" -fuzztime $${FUZZTIME:-30s} $$pkg || exit 1; \
	done

install: build ## install binary, systemd unit, default config and filters (PREFIX, DESTDIR, SYSCONFDIR, UNITDIR)
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/xdpban
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' cmd/xdpban/xdpban.service > $(DESTDIR)$(UNITDIR)/xdpban.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/xdpban.service
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/xdpban/filter.d $(DESTDIR)$(SYSCONFDIR)/xdpban/jail.d
	# The shipped .conf files are replaced on upgrade; operators' changes
	# live in *.local files, which are never touched.
	install -m 0644 internal/config/defaults/*.conf $(DESTDIR)$(SYSCONFDIR)/xdpban/
	install -m 0644 logwatch/filter/filter.d/*.conf $(DESTDIR)$(SYSCONFDIR)/xdpban/filter.d/

run: deps-run build ## run the daemon protecting this host's default-route interfaces (root)
	./$(BIN) run

demo: deps build ## watch xdpban ban an SSH password guesser and drop it in XDP, in throwaway namespaces (root, ~35s)
	$(GO) run ./cmd/xdpban-demo -xdpban $(BIN)

package: ## build the .deb and .rpm into dist/ (nfpm; binary, unit, config, man pages, completions)
	rm -rf build/pkg && mkdir -p build/pkg/filter.d $(DIST)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o build/pkg/xdpban ./cmd/xdpban
	sed -e 's|@SBINDIR@|/usr/sbin|g' -e 's|@SYSCONFDIR@|/etc|g' cmd/xdpban/xdpban.service > build/pkg/xdpban.service
	cp logwatch/filter/filter.d/*.conf build/pkg/filter.d/
	build/pkg/xdpban man 8 | gzip -9n > build/pkg/xdpban.8.gz
	build/pkg/xdpban man 5 | gzip -9n > build/pkg/xdpban.conf.5.gz
	build/pkg/xdpban completion bash > build/pkg/xdpban.bash
	build/pkg/xdpban completion zsh > build/pkg/_xdpban
	build/pkg/xdpban completion fish > build/pkg/xdpban.fish
	VERSION=$(VERSION) ARCH=$(ARCH) GOFLAGS= $(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DIST)/
	VERSION=$(VERSION) ARCH=$(ARCH) GOFLAGS= $(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager rpm --target $(DIST)/

.PHONY: help deps-run package deps-bench bench generate bench-xdp authlog bench-logwatch bench-follow bench-memory build install test imports fuzz run bench-daemon demo
