# Entry points. `make demo` and `make test` do all set-up on a fresh Debian 12
# machine: missing packages, the build, the guest kernel (cached outside the
# checkout) and the default root filesystem.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_LONG_SECONDS ?= 1800
CTEST_ARGS ?=
SHARE := $(BUILD)/share/moat

.PHONY: all deps build kernel rootfs demo test test-slow test-fresh unit-test vm-test asan fuzz-build fuzz fuzz-long bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@ninja -C $(BUILD)

kernel: deps
	@mkdir -p $(SHARE)
	@path=$$(kernel/build.sh | tail -n 1) && ln -sfn "$$path" $(SHARE)/vmlinux && echo "kernel: $$path"

rootfs: deps
	@mkdir -p $(SHARE)
	@[ -x $(SHARE)/rootfs-busybox/bin/busybox ] || scripts/make-busybox-rootfs.sh $(SHARE)/rootfs-busybox

demo: build kernel rootfs
	$(BUILD)/bin/moat run -- sh -c 'echo "hello from a moat microVM: $$(uname -sr), $$(nproc) vCPU, hostname $$(hostname)"; id; ls /'

test: build kernel rootfs
	cd $(BUILD) && ctest --output-on-failure --timeout 900 -LE slow $(CTEST_ARGS)

# Soak and fault-injection runs (label slow), too long for `make test`.
test-slow: build kernel rootfs
	cd $(BUILD) && ctest --output-on-failure -L slow $(CTEST_ARGS)

# The README's two commands, `make demo` and `make test`, run in a clean
# Debian 12 root holding only a copy of this checkout (scripts/test-fresh.sh):
# a package the install script does not name is missing there. The guest
# kernel is built here first so the root can share it read-only.
test-fresh: deps kernel
	scripts/test-fresh.sh

unit-test: build
	cd $(BUILD) && ctest --output-on-failure -L unit $(CTEST_ARGS)

vm-test: build kernel rootfs
	cd $(BUILD) && ctest --output-on-failure -L vm -LE slow $(CTEST_ARGS)

# Host code under AddressSanitizer + UBSan, unit tests and VM tests.
asan: deps kernel rootfs
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMOAT_SANITIZE=ON >/dev/null
	@ninja -C $(ASAN_BUILD)
	@mkdir -p $(ASAN_BUILD)/share/moat
	@ln -sfn $$(readlink -f $(SHARE)/vmlinux) $(ASAN_BUILD)/share/moat/vmlinux
	@ln -sfn $$(readlink -f $(SHARE)/rootfs-busybox) $(ASAN_BUILD)/share/moat/rootfs-busybox
	cd $(ASAN_BUILD) && ctest --output-on-failure -LE slow $(CTEST_ARGS)

fuzz-build: deps
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMOAT_FUZZ=ON -DMOAT_TESTS=OFF >/dev/null
	@ninja -C $(FUZZ_BUILD)

# Runs every libFuzzer target for FUZZ_SECONDS each (not part of `make test`).
fuzz: fuzz-build
	@scripts/run-fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Every target for FUZZ_LONG_SECONDS (30 minutes) in turn; inputs that reach
# new code are added to the in-repo corpora (commit them).
fuzz-long: fuzz-build
	@FUZZ_MERGE=1 scripts/run-fuzzers.sh $(FUZZ_BUILD) $(FUZZ_LONG_SECONDS)

bench: build kernel rootfs
	bench/run-all.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
