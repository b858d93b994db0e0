# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

# scripts/test.sh runs the tests one at a time and ends a failing run with the failures' lines.
test: deps
	$(SWIFT) build --build-tests
	SWIFT=$(SWIFT) scripts/test.sh

demo: build
	@scripts/demo.sh

clean:
	rm -rf .build
