# motehub: `make test` is the test command of README.md and of CI.

# Programs the tests drive, as COMMAND:DEBIAN-PACKAGE. node and npm install MQTT.js.
TEST_DEPS := mosquitto:mosquitto mosquitto_pub:mosquitto-clients mosquitto_sub:mosquitto-clients stdbuf:coreutils curl:curl chromium:chromium node:nodejs npm:npm

# MQTT.js for the browser tests (internal/hubtest.MQTTJS): the npm package mqtt,
# pinned in package.json and package-lock.json. npm ci installs exactly the
# locked versions, again whenever the lock file changes; --ignore-scripts: no
# package runs code at install.
MQTTJS_DIR := internal/hubtest/testdata/mqttjs
MQTTJS_INSTALLED := $(MQTTJS_DIR)/node_modules/.installed

# TypeScript for the check of web/dashboard/motehub.d.ts against motehub.js
# (internal/hubtest.TypeScript), pinned and installed the same way: 5.9, the
# last release written in JavaScript (7 is a native program per platform).
# The Node tests of motehub.js (web/jstest, run by cmd/hub's
# TestMotehubJSNode) need Node.js 20 or later and nothing else from npm.
TYPESCRIPT_DIR := internal/hubtest/testdata/typescript
TYPESCRIPT_INSTALLED := $(TYPESCRIPT_DIR)/node_modules/.installed

# How much `make fuzz` runs each fuzz target: a count of inputs, not a duration.
# Go 1.26's fuzzing coordinator can fail a run that ends on a deadline with a
# bare "context deadline exceeded" and no failing input (go.dev/issue/75804,
# fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 100000x

# The tests of the patches to mochi-mqtt: those third_party/mochi-mqtt-server/PATCHES.md
# names. The patched module is a module of its own, which `go test ./...` does not
# reach. Its whole upstream suite (make test-mochi) has tests that time themselves
# with sleeps and fail now and then on a busy machine, with or without the patches
# (TestEstablishConnectionInheritExistingTrueTakeover, TestServerProcessPublishACLCheckDeny).
MOCHI_TESTS := $(shell grep -o 'Test[A-Z][A-Za-z0-9]*' third_party/mochi-mqtt-server/PATCHES.md | sort -u)
empty :=
MOCHI_RUN := ^($(subst $(empty) $(empty),|,$(strip $(MOCHI_TESTS))))$$

# staticcheck, pinned: the first `make check` on a machine fetches and builds
# it (about 30 s), later ones reuse Go's caches (under a second); v0.8.2 is the
# newest release and runs on Go 1.26. ./... is our module only: the mochi fork in
# third_party/ is a module of its own, which it does not reach.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test test-mochi test-deps debian-deps nats-server fuzz run check bench

## test: install what the tests need and is missing, then run every test with the race detector
test: test-deps
	HUB_REQUIRE_ALL=1 go test -race ./...
	cd third_party/mochi-mqtt-server && go test -race -run '$(MOCHI_RUN)' ./...

## test-mochi: the whole upstream suite of the patched mochi-mqtt
test-mochi:
	cd third_party/mochi-mqtt-server && go test -race ./...

test-deps: debian-deps $(MQTTJS_INSTALLED) $(TYPESCRIPT_INSTALLED) nats-server

# nats-server for the cluster tests (internal/natstest), built from the Go
# module proxy (the tool module internal/natstest/tool pins it) into the
# cache ($HUB_CACHE_DIR, else ~/.cache/motehub), once per machine: built
# here, so that the first cluster test does not pay for it (about 40 s with
# Go's caches empty, under a second once built).
nats-server:
	HUB_REQUIRE_ALL=1 go test -count=1 -run '^TestBuildNATSServer$$' ./internal/natstest

debian-deps:
	@./.ci/test-deps $(TEST_DEPS)

# npm ci empties node_modules first; the stamp marks an install that finished.
$(MQTTJS_INSTALLED): $(MQTTJS_DIR)/package.json $(MQTTJS_DIR)/package-lock.json | debian-deps
	@echo "make test: installing MQTT.js for the browser tests (npm ci in $(MQTTJS_DIR))"
	cd $(MQTTJS_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

$(TYPESCRIPT_INSTALLED): $(TYPESCRIPT_DIR)/package.json $(TYPESCRIPT_DIR)/package-lock.json | debian-deps
	@echo "make test: installing TypeScript for the check of motehub.d.ts (npm ci in $(TYPESCRIPT_DIR))"
	cd $(TYPESCRIPT_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	@set -e; for pkg in $$(go list ./...); do \
		for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
			go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## check: formatting, vet and staticcheck
check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	go vet ./...
	go run $(STATICCHECK) ./...

## run: the hub with its defaults
run:
	go run ./cmd/hub

## bench: motehub against Centrifugo, NATS server and Mosquitto (bench/run.sh; BENCH_RUNS, BENCH_TARGETS pick; BENCH_QUICK=1 for a smoke test), rewrites docs/benchmarks.md
bench:
	./bench/run.sh
