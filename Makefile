# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo clean fuzz

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

clean:
	rm -rf .build
