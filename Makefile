# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo clean fuzz release test-release

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

# scripts/test.sh runs the tests one at a time and ends a failing run with the failures' lines.
test: deps
	$(SWIFT) build --build-tests
	SWIFT=$(SWIFT) scripts/test.sh

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

clean:
	rm -rf .build .build-release
