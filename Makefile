# anomalyd: the commands a newcomer, an operator and CI need. `make help`
# lists them.

GO        ?= go
# Benchmark repetitions: benchstat reports the median of these.
BENCH_COUNT ?= 6
BENCH_TIME  ?= 1s
# Test timeout for the whole suite; real servers start inside the tests.
TEST_TIMEOUT ?= 30m

# Debian packages the tests start as real servers (and chromium, which opens
# the baseline service's site page; zookeeper and its Java, which a
# ClickHouse cluster needs), and the binary or file that tells each one is
# installed (clickhouse-server lives in /usr/sbin on Debian).
DEPS := redis-server:redis-server clickhouse-server:clickhouse-server clickhouse-client:clickhouse-client chromium:chromium \
	default-jre-headless:java zookeeper:/usr/share/java/zookeeper.jar

.PHONY: help demo deps test vet fmt-check bench fuzz build clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Flags of bin/demo, e.g. DEMO_FLAGS='-duration 0 -report-json bin/demo.json';
# `bin/demo -h` lists them.
DEMO_FLAGS ?=

demo: deps ## run the whole pipeline locally on traffic with labelled bots; report rates, precision, recall (DEMO_FLAGS)
	$(GO) build -o bin/ ./cmd/...
	bin/demo $(DEMO_FLAGS)

deps: ## install redis-server, clickhouse-server, zookeeper and chromium (the site page's test) from apt when missing (idempotent)
	@missing=""; \
	for d in $(DEPS); do \
		pkg=$${d%%:*}; bin=$${d##*:}; \
		command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] || [ -e $$bin ] || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: redis-server, clickhouse-server, zookeeper and chromium are installed"; exit 0; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "deps: installing$$missing"; \
	$$sudo apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing

test: deps fmt-check vet ## install deps, check formatting, vet, run every test against real servers
	$(GO) test -count=1 -race -timeout $(TEST_TIMEOUT) ./...

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail if any Go file is not gofmt-formatted
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

bench: deps ## run the benchmarks (medians via benchstat) and the PyOD parity report
	@mkdir -p bin
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) -count $(BENCH_COUNT) ./... | tee bin/bench.txt
	$(GO) tool benchstat bin/bench.txt
	$(GO) test -count=1 -run TestPyODParity -v ./bench | grep -v '^=== RUN'

# A target that fails with a bare "context deadline exceeded" and no
# failing input written is Go's fuzzing coordinator racing its own
# -fuzztime deadline (go.dev/issue/75804, fixed in Go 1.27), not a finding:
# it is run again, at most twice more.
fuzz: ## run every fuzz target (event, score, key, model and baseline decoding, JSON strings) for FUZZ_TIME each (default 30s)
	@set -e; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	grep -rlE '^func Fuzz[A-Za-z0-9_]*\(' --include='*_test.go' . | sort | while read -r file; do \
		for target in $$(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$$file"); do \
			for try in 1 2 3; do \
				echo "fuzz $$(dirname "$$file") $$target"; \
				if $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $${FUZZ_TIME:-30s} "$$(dirname "$$file")" >"$$out" 2>&1; then \
					cat "$$out"; break; \
				fi; \
				cat "$$out"; \
				if [ $$try = 3 ] || ! grep -q 'context deadline exceeded' "$$out" || grep -q 'Failing input written' "$$out"; then \
					exit 1; \
				fi; \
				echo "fuzz: the coordinator's deadline race (go.dev/issue/75804), no input found: running $$target again"; \
			done; \
		done; \
	done

build: ## build every command into bin/
	$(GO) build -o bin/ ./cmd/...

clean: ## remove build and benchmark output
	rm -rf bin
