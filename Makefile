# relabel — see README.md.
SHELL := bash
GO ?= go
CLUSTER := internal/cluster/cluster.sh
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
STATICCHECK_VERSION := v0.8.2

.PHONY: build demo test test-short lint bench cluster-up cluster-down clean

build: ## build bin/relabel
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/relabel .

demo: build ## start the local cluster, load sample workloads, run relabel on them
	bash internal/cluster/demo.sh

test: lint ## run every test, end to end on the local clusters (a second, one-node one for the multi-cluster tests)
	RELABEL_TEST_KUBECONFIG=$$(bash $(CLUSTER) up relabel-test) \
	RELABEL_TEST_KUBECONFIG_B=$$(RELABEL_CLUSTER_NODES=1 bash $(CLUSTER) up relabel-test-b) \
		$(GO) test -race -count=1 -timeout 60m ./...

test-short: ## only the tests that need no cluster
	$(GO) test -short -count=1 ./...

lint:
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench: ## the benchmarks on a local cluster (relabel-bench), one table of figures; BENCH_OUT=FILE also writes it there
	@bash bench/run.sh

cluster-up: ## start the local cluster and print its kubeconfig path
	@bash $(CLUSTER) up

cluster-down: ## delete the local clusters
	@bash $(CLUSTER) down
	@bash $(CLUSTER) down relabel-test
	@bash $(CLUSTER) down relabel-test-b

clean:
	rm -rf bin
