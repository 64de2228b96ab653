# relabel — see README.md.
SHELL := bash
GO ?= go
CLUSTER := internal/cluster/cluster.sh
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
STATICCHECK_VERSION := v0.8.2
IMAGE ?= relabel:latest

.PHONY: build image deploy-manifests demo test test-deps test-short lint cluster-up cluster-down clean

build: ## build bin/relabel
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/relabel .

image: ## build the container image (needs docker)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t $(IMAGE) .

deploy-manifests: ## regenerate deploy/rbac*.yaml from relabel rbac
	$(GO) run . rbac > deploy/rbac.yaml
	$(GO) run . rbac --audit-only > deploy/rbac-audit.yaml

demo: build ## start the local cluster, load sample workloads, run relabel on them
	bash internal/cluster/demo.sh

test: lint test-deps ## run every test, end to end on the local clusters (a second, one-node one for the multi-cluster tests)
	RELABEL_TEST_KUBECONFIG=$$(bash $(CLUSTER) up relabel-test) \
	RELABEL_TEST_KUBECONFIG_B=$$(RELABEL_CLUSTER_NODES=1 bash $(CLUSTER) up relabel-test-b) \
		$(GO) test -race -count=1 -timeout 60m ./...

test-short: ## only the tests that need no cluster
	$(GO) test -short -count=1 ./...

# Debian's chromium renders the HTML report in its test.
test-deps:
	@command -v chromium >/dev/null || { echo "installing chromium for the HTML report test"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium >/dev/null; }

lint:
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

cluster-up: ## start the local cluster and print its kubeconfig path
	@bash $(CLUSTER) up

cluster-down: ## delete the local clusters
	@bash $(CLUSTER) down
	@bash $(CLUSTER) down relabel-test
	@bash $(CLUSTER) down relabel-test-b

clean:
	rm -rf bin
