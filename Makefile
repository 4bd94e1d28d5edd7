# HsmVault: `make run` starts a development fleet on 127.0.0.1; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := run

RUN_DIR ?= .run
MEMBERS ?= 3
CONFIGURATION ?= Release
DAEMON := src/HsmVault.Daemon/bin/$(CONFIGURATION)/net10.0/hsmvaultd.dll
CLI := src/HsmVault.Cli/bin/$(CONFIGURATION)/net10.0/hsmvault.dll

IMAGE ?= hsmvault:dev

.PHONY: run run-second-fleet build test bench prerequisites clean image run-containers run-containers-down run-containers-destroy test-containers

# What a fresh Debian 12 machine lacks: SoftHSM2, and NSS's certutil for the tests that run the
# daemon over NSS softoken, a second PKCS#11 implementation (the .NET SDK comes with the machine).
prerequisites:
	@command -v softhsm2-util >/dev/null || { apt-get update -qq && apt-get install -y -qq softhsm2 >/dev/null; }
	@command -v certutil >/dev/null || { apt-get update -qq && apt-get install -y -qq libnss3 libnss3-tools >/dev/null; }
	@command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required: https://dot.net" >&2; exit 1; }

build: prerequisites
	dotnet build HsmVault.sln -c $(CONFIGURATION) -v quiet -nologo

# Makes the tokens and keys (once), then starts two witnesses, publishes the fleet's validation
# bundle at them, and runs every member in the foreground; Ctrl-C stops them (softhsm/run-dev.sh).
run: build
	softhsm/dev-fleet.sh $(RUN_DIR) $(MEMBERS)
	softhsm/run-dev.sh $(RUN_DIR) $(MEMBERS)

# Beside a running `make run` (in another shell, the same RUN_DIR): a second fleet, dev-fleet-2,
# with its own tokens and keys under $(RUN_DIR)/fleet2/, published at the running witnesses as the next
# epoch of the namespace and then named by the first fleet as its successor, so users move to it at their
# next recovery; runs its members in the foreground until Ctrl-C (softhsm/second-fleet.sh). No build: the
# first fleet's daemons run from the same binaries.
run-second-fleet:
	softhsm/second-fleet.sh $(RUN_DIR) $(MEMBERS)

# Builds once, then runs the test projects one after another (-m:1): fleet and crash tests
# start real daemons, and on 2 cores they should not compete with the simulator for CPU. Ends with
# the totals and each failed test with the start of its message: the tail is what CI shows.
test: prerequisites
	dotnet build HsmVault.sln -c $(CONFIGURATION) -v quiet -nologo
	@set -o pipefail; dotnet test HsmVault.sln -c $(CONFIGURATION) --no-build -nologo -m:1 2>&1 | tee $(RUN_DIR)-test.log; \
	status=$$?; \
	awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($$i == "Failed:") f += $$(i+1); if ($$i == "Passed:") p += $$(i+1) } } \
	     END { printf "%d passed, %d failed\n", p, f }' $(RUN_DIR)-test.log; \
	grep -E -A6 '^\s+Failed [A-Za-z]' $(RUN_DIR)-test.log | cut -c1-300 || true; \
	exit $$status

# Recoveries per second and p50/p99 latency, and single-write commit latency, for a fleet of
# one and a fleet of three started for the purpose (under .bench/), with the machine's cores.
# `make bench USERS=100000`: the same with fleets whose state holds that many registered users.
USERS ?= 0
bench: build
	softhsm/bench-fleets.sh .bench 10 8 $(if $(filter-out 0,$(USERS)),--users $(USERS))

# The hsmvaultd image (docker/): dockerd started and the base image made without a registry
# when missing, the daemon and the CLI published self-contained, then `docker build`.
image:
	docker/build-image.sh $(IMAGE)

# A fleet of $(MEMBERS) containers and two dev-mode witnesses on the private network `hsmvault`,
# provisioned on first use; prints each member's client endpoint and each witness's endpoint and
# verifier key on 127.0.0.1. `-down` stops them, `-destroy` forgets them.
run-containers: image
	docker/run-fleet.sh $(IMAGE) $(MEMBERS)

run-containers-down:
	docker/run-fleet.sh $(IMAGE) $(MEMBERS) down

run-containers-destroy:
	docker/run-fleet.sh $(IMAGE) $(MEMBERS) destroy

# Fleets of containers from the image under kills, pauses, partitions, restarts and rollbacks
# (tests/HsmVault.Containers.Tests); builds only that project. Same closing line as `make test`.
# DOCKER_API_VERSION: Debian 12's engine is older than the client library's default;
# Ryuk (Testcontainers' reaper) would be pulled from a registry: the tests clean up by label.
test-containers: image
	dotnet build tests/HsmVault.Containers.Tests -c $(CONFIGURATION) -v quiet -nologo
	@set -o pipefail; HSMVAULT_CONTAINER_TESTS=true HSMVAULT_IMAGE=$(IMAGE) DOCKER_API_VERSION=1.41 TESTCONTAINERS_RYUK_DISABLED=true \
	  dotnet test tests/HsmVault.Containers.Tests -c $(CONFIGURATION) --no-build -nologo 2>&1 | tee $(RUN_DIR)-test-containers.log; \
	status=$$?; \
	awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($$i == "Failed:") f += $$(i+1); if ($$i == "Passed:") p += $$(i+1) } } \
	     END { printf "%d passed, %d failed\n", p, f }' $(RUN_DIR)-test-containers.log; \
	grep -E -A6 '^\s+Failed [A-Za-z]' $(RUN_DIR)-test-containers.log | cut -c1-300 || true; \
	exit $$status

clean:
	rm -rf $(RUN_DIR) .image
	dotnet clean HsmVault.sln -v quiet -nologo
