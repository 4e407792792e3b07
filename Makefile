# Circular — one entry point for set-up, build, tests and benchmarks.
# `make demo` and `make test` are all a fresh Debian 12 machine needs.

SHELL := /bin/bash
CARGO ?= cargo
BUILD ?= $(CURDIR)/build
RELEASE := target/release
BINS := $(RELEASE)/blockfs $(RELEASE)/image-build $(RELEASE)/circular

.PHONY: all deps build check demo test unit e2e bench fuzz soak clean usb initramfs public-given server-given mutants mutants-diff

all: build

# Installs the Debian packages that setup/programs.tsv names, repairs what is missing or broken
# (whatever removed it), then checks every program; a second run costs a second.
deps:
	@BUILD=$(BUILD) bash setup/deps.sh

build:
	$(CARGO) build --release --workspace

# The appliance. `make usb SERVER=https://store.example/circular PUBLIC=publisher.pub`
# writes build/circular-usb.img (dd it to a stick).
SERVER ?=
PUBLIC ?=
ZSTD_LEVEL ?= 19

# The appliance builders' apt sources: Debian 12 with non-free-firmware (setup/apt.sh).
APT_CONF := $(BUILD)/apt/apt.conf
$(APT_CONF): setup/apt.sh setup/apt/sources.list.d/debian.sources
	bash setup/apt.sh $(BUILD)

# The arguments are checked before anything is built or installed.
public-given:
	@[ -n "$(PUBLIC)" ] || { echo "make $(MAKECMDGOALS): give PUBLIC=publisher's public key file" >&2; exit 2; }
	@[ -r "$(PUBLIC)" ] || { echo "make $(MAKECMDGOALS): PUBLIC=$(PUBLIC) cannot be read" >&2; exit 2; }
server-given:
	@[ -n "$(SERVER)" ] || { echo "make usb: give SERVER=https://... (the store's URL, comma-separated mirrors allowed)" >&2; exit 2; }

initramfs: public-given build $(APT_CONF)
	APT_CONFIG=$(APT_CONF) $(RELEASE)/image-build initramfs --public $(PUBLIC) --bins $(RELEASE) --cache $(BUILD)/debs \
		--out $(BUILD)/appliance --level $(ZSTD_LEVEL)

usb: server-given public-given deps initramfs
	$(RELEASE)/image-build usb --server $(SERVER) --kernel $(BUILD)/appliance/vmlinuz \
		--initramfs $(BUILD)/appliance/initramfs.img --out $(BUILD)/circular-usb.img

# Builds (once) a signed demo store: the tiny guest, two weekly Debian snapshots and Debian's memtest86+ CD
# (DEMO_LIVE=1: also a Debian live CD built with live-build, booted once to login); serves it and starts the menu.
demo: deps build
	bash e2e/demo.sh

# Every test: unit tests beside the code, integration tests with a real FUSE
# mount and nginx, then the slow end-to-end scripts.
# Runs every part even when one fails, then prints how many tests ran, passed, failed and
# were skipped, and why (e2e/suite.sh; logs in build/test-logs/).
test: deps build
	bash e2e/suite.sh

unit:
	$(CARGO) test --release --workspace

# The fast developer loop: no root, no network, no VM, nothing from `make deps` needed.
# Tests that need an outside program skip themselves here (testkit::need) and run in `make test`.
check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	SUITE=check bash e2e/suite.sh

# Slow end-to-end checks (real QEMU boots, real images). Each script is self-contained.
e2e:
	@set -e; for t in e2e/test-*.sh; do [ -e "$$t" ] || continue; echo "== $$t"; bash "$$t"; done

bench: deps build
	@set -e; for b in bench/*.sh; do [ -e "$$b" ] || continue; echo "== $$b"; bash "$$b"; done

# The soak test (issue 15), on request only, not in `make test`: SOAK_BOOTS guest boots
# (default 20) while nginx is killed, the link drops and stalls (netshape) and the cache
# disk fills; no boot may see an I/O error or a wrong byte. Figures: docs/RELIABILITY.md.
SOAK_BOOTS ?= 20
soak: deps build
	SOAK_BOOTS=$(SOAK_BOOTS) bash e2e/soak.sh

# Fuzzes every decoder fed from outside (fuzz/): FUZZ_SECONDS per target (default 60),
# FUZZ_TARGETS to choose. Prints executions and crashes per target; fails on a crash.
fuzz:
	bash fuzz/run.sh

# Mutation testing (cargo-mutants; .cargo/mutants.toml names the code): every mutant of the
# trust, cache, source and loader code and init's parsers. Hours on two cores: run it on
# request. `make mutants-diff` tests only the mutants in lines changed since BASE
# (default origin/main, else the previous commit). Results: mutants.out/ (caught.txt,
# missed.txt, unviable.txt); the summary line gives the counts.
MUTANTS_ARGS ?=
mutants:
	@command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
	$(CARGO) mutants --no-shuffle $(MUTANTS_ARGS)

BASE ?= $(shell git rev-parse -q --verify origin/main >/dev/null && echo origin/main || echo HEAD~1)
mutants-diff:
	@command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
	@mkdir -p build && git diff $(BASE) > build/mutants.diff
	$(CARGO) mutants --no-shuffle --in-diff build/mutants.diff $(MUTANTS_ARGS)

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
