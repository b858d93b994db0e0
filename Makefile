# The two set-up commands of the README: `make demo` and `make test`.
SWIFT ?= swift

.PHONY: deps build test demo clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build

# One test at a time: on two cores, tests that start real processes and move real bytes time
# out when they all run at once.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --no-parallel

demo: build
	@scripts/demo.sh

clean:
	rm -rf .build
