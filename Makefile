# Circular — one entry point for set-up, build, tests and benchmarks.
# `make demo` and `make test` are all a fresh Debian 12 machine needs.

SHELL := /bin/bash
CARGO ?= cargo
BUILD ?= $(CURDIR)/build
RELEASE := target/release
BINS := $(RELEASE)/blockfs $(RELEASE)/image-build $(RELEASE)/circular

# Debian packages the build, the tests and the demo need. One list, one place.
DEBIAN_PACKAGES := \
	build-essential pkg-config ca-certificates curl \
	fuse3 nginx-light tmux zstd xxd \
	qemu-utils qemu-system-x86 qemu-block-extra ovmf seabios \
	debootstrap e2fsprogs dosfstools mtools fdisk \
	grub-pc-bin grub-efi-amd64-bin grub2-common \
	busybox-static kmod cpio

.PHONY: all deps build demo test unit e2e bench clean usb initramfs deps-sdl

all: build

# Installs only what is missing, so a second run costs a second.
deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$(echo ' '$$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make deps: all Debian packages present"; fi
	@command -v $(CARGO) >/dev/null || { echo "make deps: cargo not found; install Rust with rustup first" >&2; exit 1; }

build:
	$(CARGO) build --release --workspace

# The appliance. `make usb SERVER=https://store.example/circular PUBLIC=publisher.pub`
# writes build/circular-usb.img (dd it to a stick). DISPLAY_KIND=sdl puts
# QEMU's SDL display and Mesa in the initramfs instead of curses (much bigger).
SERVER ?=
PUBLIC ?=
DISPLAY_KIND ?= curses
ZSTD_LEVEL ?= 19
# Only for DISPLAY_KIND=sdl: QEMU's SDL/OpenGL modules and Mesa (big; not in deps).
SDL_PACKAGES := qemu-system-gui libgl1-mesa-dri libegl-mesa0 libgbm1 libudev1
deps-sdl:
	@missing=$$(for p in $(SDL_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

initramfs: build $(if $(filter sdl,$(DISPLAY_KIND)),deps-sdl)
	@[ -n "$(PUBLIC)" ] || { echo "make initramfs: give PUBLIC=publisher's public key file" >&2; exit 2; }
	$(RELEASE)/image-build initramfs --public $(PUBLIC) --bins $(RELEASE) --cache $(BUILD)/debs \
		--out $(BUILD)/appliance --display $(DISPLAY_KIND) --level $(ZSTD_LEVEL)

usb: deps initramfs
	@[ -n "$(SERVER)" ] || { echo "make usb: give SERVER=https://... (the store's URL, comma-separated mirrors allowed)" >&2; exit 2; }
	$(RELEASE)/image-build usb --server $(SERVER) --kernel $(BUILD)/appliance/vmlinuz \
		--initramfs $(BUILD)/appliance/initramfs.img --out $(BUILD)/circular-usb.img

# Builds (once) a signed demo store: the tiny guest and two weekly Debian snapshots; serves it and starts the menu.
demo: deps build
	bash e2e/demo.sh

# Every test: unit tests beside the code, integration tests with a real FUSE
# mount and nginx, then the slow end-to-end scripts.
test: deps build unit e2e

unit:
	$(CARGO) test --release --workspace

# Slow end-to-end checks (real QEMU boots, real images). Each script is self-contained.
e2e:
	@set -e; for t in e2e/test-*.sh; do [ -e "$$t" ] || continue; echo "== $$t"; bash "$$t"; done

bench: deps build
	@set -e; for b in bench/*.sh; do [ -e "$$b" ] || continue; echo "== $$b"; bash "$$b"; done

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
