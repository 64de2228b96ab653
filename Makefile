# relabel — see README.md.
SHELL := bash
GO ?= go
CLUSTER := internal/cluster/cluster.sh
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# Reproducible: no paths, no cgo (a static binary, whatever C toolchain the
# machine has), no VCS stamp (commit and date come from LDFLAGS, so a build
# from a source archive equals one from a clone). See README "Versions and releases".
BUILD := CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'
STATICCHECK_VERSION := v0.8.2
IMAGE ?= relabel:latest
# install-plugin: $(PREFIX)/bin when PREFIX is set, else $GOBIN, else ~/.local/bin.
PLUGIN_BIN = $(if $(PREFIX),$(PREFIX)/bin,$(or $(shell $(GO) env GOBIN),$(HOME)/.local/bin))

.PHONY: build install-plugin dist reproducible image deploy-manifests demo test test-prepare test-deps test-build cluster-bin rollouts-bin helm-bin test-short lint bench cluster-up cluster-down clean

build: ## build bin/relabel
	$(BUILD) -o bin/relabel .

install-plugin: ## install kubectl-relabel and its kubectl completion helper into $(PREFIX)/bin
	mkdir -p '$(PLUGIN_BIN)'
	$(BUILD) -o '$(PLUGIN_BIN)/kubectl-relabel' .
	install -m 0755 plugins/kubectl_complete-relabel '$(PLUGIN_BIN)/kubectl_complete-relabel'
	@echo "installed $(PLUGIN_BIN)/kubectl-relabel and $(PLUGIN_BIN)/kubectl_complete-relabel"
	@case ":$$PATH:" in *':$(PLUGIN_BIN):'*) ;; *) echo "$(PLUGIN_BIN) is not on PATH: add it, then run kubectl relabel version";; esac

dist: ## release archives and their krew manifest in dist/ (VERSION=vX.Y.Z)
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' DATE='$(DATE)' bash internal/release/dist.sh

reproducible: ## build twice from two copies of the tree and compare the binaries
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' DATE='$(DATE)' bash internal/release/reproducible.sh

image: ## build the container image (needs docker)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t $(IMAGE) .

deploy-manifests: ## regenerate deploy/rbac*.yaml from relabel rbac
	$(GO) run . rbac > deploy/rbac.yaml
	$(GO) run . rbac --audit-only > deploy/rbac-audit.yaml

demo: build ## start the local cluster, load sample workloads, run relabel on them
	bash internal/cluster/demo.sh

# The Argo Rollouts controller runs in a cluster of its own: its CRDs take the
# names rollouts and ro, which the other tests give to a workload CRD of theirs.
test: ## run every test, end to end on the local clusters (a second, one-node one for the multi-cluster tests; a third with Argo Rollouts' controller)
	$(MAKE) -j6 --no-print-directory test-prepare
	RELABEL_TEST_KUBECONFIG=$$(bash $(CLUSTER) up relabel-test) \
	RELABEL_TEST_KUBECONFIG_B=$$(RELABEL_CLUSTER_NODES=1 bash $(CLUSTER) up relabel-test-b) \
	RELABEL_TEST_KUBECONFIG_ROLLOUTS=$$(bash $(CLUSTER) rollouts relabel-test-rollouts) \
	RELABEL_TEST_HELM=$$(bash $(CLUSTER) helm-bin) \
		$(GO) test -race -count=1 -timeout 60m ./...
	cd internal/krewcheck && $(GO) test -count=1 ./...

# On a new machine most of make test is building: the checks, the cluster's
# binaries, Argo Rollouts' controller, Helm and the race-built test binaries.
# Side by side (make -j) each fills the others' waits for downloads and
# single-threaded links; the test run then finds them all cached.
test-prepare: lint test-deps reproducible cluster-bin rollouts-bin helm-bin test-build

cluster-bin:
	bash $(CLUSTER) bin >/dev/null
rollouts-bin helm-bin:
	bash $(CLUSTER) $@ >/dev/null

# Compiles every test binary under -race without running it.
test-build:
	$(GO) test -race -count=1 -exec true ./... >/dev/null
	cd internal/krewcheck && $(GO) test -count=1 -exec true ./... >/dev/null

test-short: ## only the tests that need no cluster
	$(GO) test -short -count=1 ./...
	cd internal/krewcheck && $(GO) test -short -count=1 ./...

# Debian packages the tests use: chromium renders the HTML report; zsh and fish
# load the completion scripts.
TEST_PACKAGES := chromium zsh fish
test-deps:
	@missing=$$(for p in $(TEST_PACKAGES); do command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing for the tests"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

lint:
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	$(GO) vet ./...
	cd internal/krewcheck && $(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench: ## the benchmarks on a local cluster (relabel-bench), one table of figures; BENCH_OUT=FILE also writes it there
	@bash bench/run.sh

cluster-up: ## start the local cluster and print its kubeconfig path
	@bash $(CLUSTER) up

cluster-down: ## delete the local clusters
	@bash $(CLUSTER) down
	@bash $(CLUSTER) down relabel-test
	@bash $(CLUSTER) down relabel-test-b
	@bash $(CLUSTER) down relabel-test-rollouts

clean:
	rm -rf bin dist
