# SPDX-License-Identifier: BSD-3-Clause
# Thin wrapper over CMake/CTest.  Every target installs what it needs
# (scripts/deps.sh, Debian packages) and builds before it runs.
#
#   make / make build   build/          the product (gcc, RelWithDebInfo)
#   make check          build/          unit, integration, VM tests; then the fuzz
#                                       targets from build-asan/ (they need clang + ASan)
#   make check-asan     build-asan/     every target with AddressSanitizer + UBSan (clang):
#                                       unit, integration and fuzz tests
#   make check-tsan     build-tsan/     every target with ThreadSanitizer (clang): unit tests
#                                       and the tests that need no uninstrumented program
#   make format-check   the C sources against .clang-format
#   make demo           tools/demo.sh (a VM without and with REMOCA)
#
# WERROR=ON (what .ci/run sets) turns warnings into errors.
BUILD ?= build
JOBS ?= $(shell nproc)
WERROR ?= OFF
CTEST = ctest --output-on-failure --timeout 600
# clang 14's ThreadSanitizer cannot map its shadow with the kernel's address
# randomisation on; setarch -R turns it off for ctest and everything it starts.
NORAND = setarch $(shell uname -m) -R

.PHONY: all deps build build-asan build-tsan check check-asan check-tsan format-check demo clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMOCA_WERROR=$(WERROR) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

build-asan: deps
	@CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMOCA_WERROR=$(WERROR) \
		-DREMOCA_SANITIZE=address,undefined >/dev/null
	@cmake --build build-asan -j$(JOBS) -- --no-print-directory

build-tsan: deps
	@CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMOCA_WERROR=$(WERROR) \
		-DREMOCA_SANITIZE=thread >/dev/null
	@cmake --build build-tsan -j$(JOBS) -- --no-print-directory

check: build build-asan
	@cd $(BUILD) && $(CTEST) -LE fuzz
	@cd build-asan && $(CTEST) -L fuzz

check-asan: build-asan
	@rm -rf build-asan/sanitizer && mkdir -p build-asan/sanitizer
	@cd build-asan && $(CTEST) -LE vm
	@./scripts/sanitizer-reports build-asan/sanitizer

check-tsan: build-tsan
	@rm -rf build-tsan/sanitizer && mkdir -p build-tsan/sanitizer
	@cd build-tsan && $(NORAND) $(CTEST) -L unit
	@cd build-tsan && $(NORAND) $(CTEST) -R '^integ_(memd|client)_'
	@./scripts/sanitizer-reports build-tsan/sanitizer

format-check:
	@./scripts/format-check

demo: build
	@./tools/demo.sh

clean:
	rm -rf $(BUILD) build-asan build-tsan
