# idemgate: `make run` starts the embedded dev mode, `make test` runs every
# test against a real PostgreSQL 15 server and a real Kafka 4.x broker
# (then again on kfake). See README.md.

GO      ?= go
BIN     := bin/idemgate
DATADIR ?= .idemgate
ADDR    ?= 127.0.0.1:8080

.PHONY: all build run test vet bench bench-growth bench-ab fuzz kafka-start kafka-stop pg-start pg-stop clean chaos chaos-cluster regions regions-stop

all: build

build:
	$(GO) build -o $(BIN) ./cmd/idemgate

## run: the embedded default (private PostgreSQL + in-process Kafka in $(DATADIR))
run: build
	./$(BIN) dev --data-dir $(DATADIR) --addr $(ADDR)

## test: vet, unit tests, integration tests on the real broker and on kfake
test: build
	scripts/test.sh

## chaos: the full-size chaos test (issue 4, RELIABILITY.md); CI runs a smaller one in `go test ./...`
chaos:
	CHAOS_COMMANDS=2000 CHAOS_KILLS=24 CHAOS_CLIENTS=32 CHAOS_DURATION=4m \
		$(GO) test -count=1 -v -timeout 30m -run 'TestChaos$$' ./chaos/

## chaos-cluster: the full-size chaos test on the clusters (three Kafka nodes, a PostgreSQL
## primary with a synchronous standby, toxiproxies; issue 19); CI runs TestChaosCluster smaller
chaos-cluster:
	CHAOS_COMMANDS=2000 CHAOS_KILLS=24 CHAOS_CLIENTS=32 CHAOS_DURATION=4m \
		$(GO) test -count=1 -v -timeout 30m -run 'TestChaosCluster$$' ./chaos/

## regions: two regions on this machine (scripts/regions.sh, docs/MULTI-REGION.md)
REGIONS_RUN_DIR ?= /tmp/idemgate-regions
regions:
	@mkdir -p $(REGIONS_RUN_DIR)
	@REGIONS_RUN_DIR=$(REGIONS_RUN_DIR) scripts/regions.sh start >$(REGIONS_RUN_DIR)/urls.env
	@cat $(REGIONS_RUN_DIR)/urls.env
	@echo 'Try:'
	@echo '  . $(REGIONS_RUN_DIR)/urls.env'
	@echo '  curl -i -X POST $$REGION_A_URL/v1/payments -H "Authorization: Bearer dev-key-a" -H "Idempotency-Key: try-1" \'
	@echo '    -H "Content-Type: application/json" -d '"'"'{"amount":1000,"currency":"EUR","customer":"cus_1"}'"'"
	@echo '  # the same key and body in region B: the same operation (its 202 again, or its stored answer)'
	@echo '  REGIONS_RUN_DIR=$(REGIONS_RUN_DIR) scripts/regions.sh kill A          # B adopts its pending commands after the lease'
	@echo '  REGIONS_RUN_DIR=$(REGIONS_RUN_DIR) scripts/regions.sh start-region A  # back on its ports, its broker keeping its data'
	@echo '  make regions-stop'
regions-stop:
	REGIONS_RUN_DIR=$(REGIONS_RUN_DIR) scripts/regions.sh stop

vet:
	$(GO) vet ./...

## bench: idemgate against its baselines (pgbench, bench/syncclaim), fsync on; see BENCHMARKS.md
bench: build
	scripts/bench.sh

## bench-growth: idemgate's cost per command at 10k, 1M and 10M retained claims (issue 21); see BENCHMARKS.md
bench-growth: build
	scripts/bench-growth.sh

## bench-ab: one lever measured on its own: idemgate against itself with a setting changed (VARIANTS; issue 21); see BENCHMARKS.md
bench-ab: build
	scripts/bench-ab.sh

kafka-start:
	scripts/kafka.sh start
kafka-stop:
	scripts/kafka.sh stop
pg-start:
	scripts/pg.sh start
pg-stop:
	scripts/pg.sh stop

clean:
	rm -rf bin $(DATADIR)
