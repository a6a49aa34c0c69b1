# Switchyard. `make run` starts the whole stack on the embedded default; `make test` runs every test.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
PREFIX ?= /usr/local
DESTDIR ?=
STATE ?= .switchyard

.PHONY: all setup build release run test clean

all: build

setup:
	@scripts/setup.sh run

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

# The whole stack, all-in-one, in ./$(STATE): supervisor, gate, scheduler, poller, demo agent.
run: build
	SWITCHYARD_STATE_DIR=$(STATE) $(SWIFT) run switchyard-supervisor

test:
	@scripts/setup.sh test
	$(SWIFT) build --build-tests
	$(SWIFT) test --disable-swift-testing

clean:
	rm -rf .build
