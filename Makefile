# locksmith — see README.md.
#   make run      install build deps, build the release binary, and inspect this host (TUI on a
#                 terminal, else a list)
#   make test     install test deps, build, start the test services, run every test, stop them
#   make install  release binary (static Swift stdlib), man page, shell completions and systemd
#                 units (metrics timer, watch service) under $(PREFIX)

PREFIX ?= /usr/local
SWIFT ?= swift
RELEASE_BIN := .build/release/locksmith
TEST_TIMEOUT ?= 45m
UNITS := $(basename $(notdir $(wildcard systemd/*.in)))

.PHONY: all build release run deps test-deps test install uninstall clean

all: build

deps:
	scripts/install-deps build

test-deps:
	scripts/install-deps test

build: deps
	$(SWIFT) build

# The release binary links the Swift runtime and FoundationEssentials (no Foundation, no ICU:
# docs/ARCHITECTURE.md) statically, by lld with packed relative relocations
# (release-toolset.json: -z pack-relative-relocs, DT_RELR, glibc >= 2.36): the dynamic loader
# then reads ~42k relocations of a position-independent binary from an 8 KB table instead of
# a 1 MB one, at every start. Without SwiftPM's default run path of $$ORIGIN: the Swift
# libraries are linked in, and the dynamic loader would otherwise look for libm, libstdc++,
# libgcc_s and libc, and later for the dlopen'd libcrypto, ncursesw and libgfapi, in the
# binary's own directory first (~40 failed openat calls before main). scripts/bench builds
# through this target.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --disable-local-rpath --product locksmith --toolset release-toolset.json

run: release
	$(RELEASE_BIN) $(ARGS)

test: test-deps
	$(SWIFT) build --build-tests
	scripts/run-tests $(TEST_TIMEOUT)

install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(RELEASE_BIN) $(DESTDIR)$(PREFIX)/bin/locksmith
	install -m 0644 man/locksmith.1 $(DESTDIR)$(PREFIX)/share/man/man1/locksmith.1
	$(RELEASE_BIN) --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/locksmith
	$(RELEASE_BIN) --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_locksmith
	$(RELEASE_BIN) --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/locksmith.fish
	for u in $(UNITS); do \
		sed 's|@BINDIR@|$(PREFIX)/bin|g' systemd/$$u.in > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u && \
		chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/locksmith $(DESTDIR)$(PREFIX)/share/man/man1/locksmith.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/locksmith \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_locksmith \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/locksmith.fish \
		$(addprefix $(DESTDIR)$(PREFIX)/lib/systemd/system/,$(UNITS))

clean:
	rm -rf .build
