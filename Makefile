# Switchyard. `make run` starts the whole stack on the embedded default; `make test` runs every test.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
PREFIX ?= /usr/local
DESTDIR ?=
STATE ?= .switchyard

BINDIR ?= $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/switchyard
BINARIES := switchyard-gate switchyard-scheduler switchyard-poller switchyard-supervisor switchyard-demo-agent
UNITS := switchyard-gate.service switchyard-scheduler.service switchyard-poller.service switchyard-supervisor.service switchyard.target

.PHONY: all setup build release run test clean install install-files uninstall

all: build

setup:
	@scripts/setup.sh run

build: setup
	$(SWIFT) build

# Release binaries with the Swift runtime linked in: a production host needs no Swift toolchain,
# only libsqlite3 and libsystemd (both in Debian's base system).
release: setup
	$(SWIFT) build -c release --static-swift-stdlib

# The whole stack, all-in-one, in ./$(STATE): supervisor, gate, scheduler, poller, demo agent.
run: build
	SWITCHYARD_STATE_DIR=$(STATE) $(SWIFT) run switchyard-supervisor

# Every test: unit specifications, the real executables as processes, a real journald, and a
# real systemd in a container (the release binaries are installed into it).
test:
	@scripts/setup.sh test
	$(SWIFT) build -c release --static-swift-stdlib
	$(SWIFT) build --build-tests
	$(SWIFT) test --disable-swift-testing

install: release install-files

# The files only, from binaries already in .build/release (the systemd container test uses this).
install-files:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/switchyard $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)/usr/lib/sysusers.d $(DESTDIR)/usr/lib/tmpfiles.d
	for b in $(BINARIES); do install -m 0755 .build/release/$$b $(DESTDIR)$(BINDIR)/$$b; done
	for u in $(UNITS); do sed 's|@BINDIR@|$(BINDIR)|g' deploy/$$u > $(DESTDIR)$(UNITDIR)/$$u; chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 0644 deploy/switchyard.sysusers $(DESTDIR)/usr/lib/sysusers.d/switchyard.conf
	install -m 0644 deploy/switchyard.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/switchyard.conf
	test -e $(DESTDIR)/etc/switchyard/switchyard.env || install -m 0640 deploy/switchyard.env.example $(DESTDIR)/etc/switchyard/switchyard.env
	test -e $(DESTDIR)/etc/switchyard/profiles.json || install -m 0640 deploy/profiles.example.json $(DESTDIR)/etc/switchyard/profiles.json
	install -m 0644 docs/operations.md README.md $(DESTDIR)$(DOCDIR)/
	@echo "installed; next: systemd-sysusers, create /etc/switchyard/control-token, systemctl daemon-reload, systemctl enable --now switchyard.target"

uninstall:
	-for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	-for b in $(BINARIES); do rm -f $(DESTDIR)$(BINDIR)/$$b; done
	rm -f $(DESTDIR)/usr/lib/sysusers.d/switchyard.conf $(DESTDIR)/usr/lib/tmpfiles.d/switchyard.conf
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "uninstalled; /etc/switchyard and /var/lib/switchyard (configuration and data) are kept"

clean:
	rm -rf .build
