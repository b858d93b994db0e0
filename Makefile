# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift
# The commit `warren --version` prints (Package.swift reads it; "unknown" outside git).
WARREN_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)
export WARREN_COMMIT

.PHONY: deps build test demo install clean fuzz release test-release lab

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

# scripts/test.sh runs the tests one at a time and ends a failing run with the failures' lines.
test: deps
	$(SWIFT) build --build-tests
	SWIFT=$(SWIFT) scripts/test.sh

# The two-site NAT lab's long runs (as root, about 20 minutes): a 10-minute formation watch, 30 %
# loss on a site's uplink for 2 minutes, 20 SIGTERM stops of runners with restarts, router
# re-addressing, a minute's partition, a gateway and a runner restarted; each prints "lab figure:"
# lines (RELIABILITY.md). The short scenarios (SiteLabTests) run here too, and in `make test` (as
# root; elsewhere each says why it does not run; WARREN_LAB=0 skips them); the many-gateway
# scenarios (MultiGatewayLabTests; LAB_CLAIM_RACES rounds of the claim race) run here only.
LAB_WATCH_SECONDS ?= 600
LAB_LOSS_SECONDS ?= 120
LAB_STOPS ?= 20
LAB_PARTITION_SECONDS ?= 60
LAB_CLAIM_RACES ?= 20
lab: deps
	$(SWIFT) build --build-tests
	bash -o pipefail -c 'WARREN_LAB=1 WARREN_LAB_LONG=1 WARREN_LAB_WATCH_SECONDS=$(LAB_WATCH_SECONDS) WARREN_LAB_LOSS_SECONDS=$(LAB_LOSS_SECONDS) \
		WARREN_LAB_STOPS=$(LAB_STOPS) WARREN_LAB_PARTITION_SECONDS=$(LAB_PARTITION_SECONDS) \
		WARREN_LAB_CLAIM_RACES=$(LAB_CLAIM_RACES) $(SWIFT) test --skip-build --no-parallel --filter "SiteLab|MultiGatewayLab" 2>&1 | tee .build/lab.log'; \
		status=$$?; echo "== lab figures =="; grep "lab figure:" .build/lab.log; exit $$status

# Every fuzz target for FUZZ_SECONDS each (libFuzzer + address sanitizer, built in .build-fuzz);
# not part of `make test`. One target: scripts/fuzz.sh TARGET [SECONDS].
FUZZ_SECONDS ?= 60
fuzz:
	SWIFT="$(SWIFT)" scripts/fuzz.sh --all $(FUZZ_SECONDS)

demo: build
	@scripts/demo.sh

# Optional, for cloud gateways: a self-contained warren-<version>-linux-<arch>.tar.gz and its
# .sha256 in .build-release/dist (a long release build, in its own scratch path).
release: deps
	SWIFT=$(SWIFT) scripts/release.sh

# The first-boot script of a cloud gateway run in a Debian 12 root (debootstrap, cached in
# /var/cache/warren-debootstrap) against the release served from loopback. Needs root.
test-release: release
	scripts/first-boot-test.sh

# `make install`: the binary to $(PREFIX)/bin, shell completions (bash, zsh, fish) and a systemd
# unit for the node (enable it with `systemctl enable --now warren-node`). BIN names a warren
# already built; without one it builds a release. DESTDIR stages the files for a package.
PREFIX ?= /usr/local
BIN ?= .build/release/warren
SYSTEMD_DIR ?= $(PREFIX)/lib/systemd/system

install:
	@[ -x "$(BIN)" ] || $(SWIFT) build -c release
	install -D -m 0755 "$(BIN)" "$(DESTDIR)$(PREFIX)/bin/warren"
	install -d "$(DESTDIR)$(PREFIX)/share/bash-completion/completions" "$(DESTDIR)$(PREFIX)/share/zsh/site-functions" \
		"$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d" "$(DESTDIR)$(SYSTEMD_DIR)"
	"$(BIN)" --generate-completion-script bash > "$(DESTDIR)$(PREFIX)/share/bash-completion/completions/warren"
	"$(BIN)" --generate-completion-script zsh > "$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_warren"
	"$(BIN)" --generate-completion-script fish > "$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/warren.fish"
	sed 's|@BINDIR@|$(PREFIX)/bin|' scripts/warren-node.service > "$(DESTDIR)$(SYSTEMD_DIR)/warren-node.service"

clean:
	rm -rf .build .build-release
