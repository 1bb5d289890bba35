# spoke - the user's vocabulary over CMake. `make run` and `make test` set up
# everything (Debian packages included) on a fresh Debian 12 machine.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 5
PORT       ?= 8090

.PHONY: all build deps test-deps run test unit asan asan-test fuzz fuzz-run bench lint clean format reliability

all: build

deps:
	@tools/deps.sh

# tools only the tests use (tmux, chromium, haproxy, the pinned npm clients);
# best effort: tests whose tool is missing skip themselves
test-deps:
	@tools/test-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/spoke serve --port $(PORT)

# unit + integration tests (gcc build), then the same suite under ASan+UBSan
# (clang build), the lint, and every fuzzer for FUZZ_SECONDS on its corpus.
test: build lint test-deps
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) asan-test
	$(MAKE) fuzz-run
	@echo "make test: all stages passed"

unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DSPOKE_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)

asan-test: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 SPOKE_ASAN=1 \
	  ctest --output-on-failure -j$(JOBS) -LE no-asan

fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DSPOKE_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j$(JOBS)

fuzz-run: fuzz
	tools/run-fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	bench/run.sh $(BUILD)

# reliability campaigns (issue 14 s8; not part of `make test`): fuzzers, faulted and
# killed pulls, killed history writes, overload, slow sockets, soak, allocation
# sweeps; one table at the end. Sized by REL_* variables (see tools/reliability.py),
# e.g. REL_FUZZ_RUNS=100000 REL_PULLS=20 REL_SOAK_S=60 make reliability
reliability: build fuzz
	python3 tools/reliability.py $(BUILD) $(FUZZ_BUILD)

lint:
	python3 tools/checksrc

format:
	clang-format -i $$(find src tests -name '*.[ch]')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
