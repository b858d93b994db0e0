# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

# Serial: on a 2-core machine Swift's concurrency pool has two threads, and the tests that still
# block one (process waits, libcurl's synchronous API) starve the others when run in parallel.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --no-parallel

demo: build
	@scripts/demo.sh

clean:
	rm -rf .build
