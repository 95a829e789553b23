# SPDX-License-Identifier: GPL-2.0
#
# Builds rvgpu.ko against the project's test kernel (scripts/build-kernel.sh), or any
# Rust-enabled kernel build tree given as KDIR=.
#
#   make                 build rvgpu.ko
#   make CLIPPY=1        build with clippy
#   make sancheck        build the test-only selftests/sanitizers/rvgpu_sancheck.ko
#   make clean

KDIR ?= $(shell $(CURDIR)/scripts/build-kernel.sh --kdir)
LLVM ?= -19
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
export PATH := $(HOME)/.cargo/bin:$(PATH)

all: modules

modules clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=1) $@

sancheck:
	$(MAKE) -C $(KDIR) M=$(CURDIR)/selftests/sanitizers LLVM=$(LLVM) modules

rustfmt:
	rustfmt --edition 2021 --config-path $(KDIR)/source/.rustfmt.toml $(shell find src -name '*.rs' -not -path 'src/generated/*')

rustfmtcheck:
	rustfmt --edition 2021 --check --config-path $(KDIR)/source/.rustfmt.toml $(shell find src -name '*.rs' -not -path 'src/generated/*')

.PHONY: all modules clean sancheck rustfmt rustfmtcheck
