# The two commands of the README: `make run` and `make test`.
# Both install what they need first (scripts/setup.sh is idempotent).

.PHONY: setup plugins build run test fuzz bench bench-s3 bench-snapshot bench-daemon soak clean-state

setup:
	scripts/setup.sh

plugins: setup
	scripts/build-plugins.sh

build: plugins
	cargo build --release -p redback

# The daemon on the embedded defaults of examples/quickstart.toml, beside a
# loopback redis-server on 127.0.0.1:6390 with demo data (scripts/run.sh).
run: build
	scripts/run.sh

# The whole test suite (what .ci/run runs).
test: plugins
	REDBACK_REDIS62="$$(scripts/compat-servers.sh redis62)" \
	REDBACK_VALKEY9="$$(scripts/compat-servers.sh valkey9)" \
	REDBACK_S3S_FS="$$(scripts/test-servers.sh s3)" \
	REDBACK_EMULATOR_PYTHON="$$(scripts/test-servers.sh emulators)" \
	cargo test --release -p redback -p objstore -p provider-kit
	scripts/fuzz.sh $(FUZZ_CI_SECONDS)

# Every fuzz target for FUZZ_SECONDS each (or only FUZZ_TARGETS), on the
# corpus earlier runs left in target/fuzz/corpus (scripts/fuzz.sh).
FUZZ_SECONDS ?= 600
FUZZ_CI_SECONDS ?= 20
FUZZ_TARGETS ?=
fuzz: setup
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Benchmarks that print tables with their references measured in the same run.
bench: plugins
	cargo bench -p redback --bench plugin_host

# Backup and restore of a ~1 GB dataset against redis-cli and redis-server.
bench-s3: plugins
	REDBACK_S3S_FS="$$(scripts/test-servers.sh s3)" cargo bench -p redback --bench s3

bench-snapshot: build
	cargo bench -p redback --bench snapshot

# The daemon with 10,000 configured instances (start time, idle RSS and CPU)
# and the catalog with 10,000 backups of one instance (listing by time range).
bench-daemon: build
	cargo bench -p redback --bench daemon_start
	cargo bench -p redback --bench catalog

# 1,000 backups and 100 restores through the daemon: memory, descriptors
# and threads at the start, middle and end.
soak: build
	cargo bench -p redback --bench soak

clean-state:
	rm -rf var
