# The two commands of README.md: `make demo` and `make test`.
# The target directory lives outside the checkout so CI's fresh clones reuse a warm build.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/cloudha/target
TRIPLE := x86_64-unknown-linux-gnu
export CLOUDHA_BIN := $(CARGO_TARGET_DIR)/$(TRIPLE)/debug/cloudha
CARGO ?= cargo

.PHONY: deps build test lint unit lab demo packages test-packages bench-vxlan bench-vip bench-aws \
	bench-oci bench-route-table bench-fence reliability

deps:
	./scripts/install-deps.sh

build:
	$(CARGO) build --locked --bins --examples

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# Unit tests and contract tests (assert_cmd) against the built binary.
unit: build
	$(CARGO) test --locked

# Tests that need root, namespaces and the cluster stack.
lab: build
	python3 -m pytest -v -rA tests/lab

# The .deb and .rpm (dist/), see packaging/README.md.
packages:
	./packaging/build.sh

# Builds the packages, checks their contents, lints them (lintian, rpmlint), installs the .deb
# (and the .rpm into a scratch root).
test-packages: packages
	CLOUDHA_PACKAGES_BUILT=1 python3 -m pytest -v -rA tests/packaging

test: deps lint unit lab test-packages

demo: deps build
	python3 tests/lab/demo.py

# vxlan-fdb against the shell approach (one `bridge fdb append` per peer); prints figures, needs
# root. Uses the release build, which `make test` never needs.
bench-vxlan:
	$(CARGO) build --release --locked
	CLOUDHA_BIN=$(CARGO_TARGET_DIR)/$(TRIPLE)/release/cloudha python3 bench/vxlan_fdb.py

# vip (cloud=none) against resource-agents' IPaddr2: meta-data, monitor, probe, start, stop.
bench-vip:
	$(CARGO) build --release --locked
	CLOUDHA_BIN=$(CARGO_TARGET_DIR)/$(TRIPLE)/release/cloudha python3 bench/vip.py

# vip cloud=aws against resource-agents' awsvip (+ a local address step) on the EC2 lab:
# wall, CPU, max RSS, EC2 calls per action and the outage of a planned move. Needs root.
bench-aws: deps
	$(CARGO) build --release --locked
	CLOUDHA_BIN=$(CARGO_TARGET_DIR)/$(TRIPLE)/release/cloudha python3 bench/aws.py

# vip cloud=oci against resource-agents' ocivip (oci-cli) on the OCI lab. Needs root.
bench-oci: deps
	$(CARGO) build --release --locked
	CLOUDHA_BIN=$(CARGO_TARGET_DIR)/$(TRIPLE)/release/cloudha python3 bench/oci.py

# route-table against resource-agents' aws-vpc-move-ip on the EC2 lab, 1, 10 and 50 route
# tables: wall, CPU, max RSS, EC2 calls per action and the outage of a planned move. Needs
# root; aws-vpc-move-ip sleeps 1 s per table and call, so this takes about 15 minutes.
bench-route-table: deps
	$(CARGO) build --release --locked
	CLOUDHA_BIN=$(CARGO_TARGET_DIR)/$(TRIPLE)/release/cloudha python3 bench/route_table.py

# fence_cloudha against fence-agents' fence_aws on the EC2 lab: wall, CPU, max RSS and EC2 calls
# of status, monitor, off and reboot, off with a slow stop (polling granularity), and the
# client-observed outage of a frozen node in a cluster with STONITH on; then fence_cloudha on
# the OCI lab. Needs root.
bench-fence: deps
	$(CARGO) build --release --locked
	CLOUDHA_BIN=$(CARGO_TARGET_DIR)/$(TRIPLE)/release/cloudha python3 bench/fence.py

# The reliability matrix (faults, kills inside every API call, races) on the EC2 and OCI labs
# and the no-panic sweep; prints the tables and writes docs/reliability.md. Needs root.
reliability: deps build
	python3 scripts/reliability.py
