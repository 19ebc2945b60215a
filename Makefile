# Thin wrapper over CMake/CTest.  `make check` and `make demo` install what they
# need (scripts/deps.sh, Debian packages), build into build/, then run.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build check demo clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

check: build
	@cd $(BUILD) && ctest --output-on-failure --timeout 600

demo: build
	@./tools/demo.sh

clean:
	rm -rf $(BUILD)
