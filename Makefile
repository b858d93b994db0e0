# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

demo: build
	@scripts/demo.sh

clean:
	rm -rf .build
