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
# install-plugin: $(PREFIX)/bin when PREFIX is set, else $GOBIN, else ~/.local/bin.
PLUGIN_BIN = $(if $(PREFIX),$(PREFIX)/bin,$(or $(shell $(GO) env GOBIN),$(HOME)/.local/bin))

.PHONY: build install-plugin dist reproducible demo test test-short lint cluster-up cluster-down clean

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

demo: build ## start the local cluster, load sample workloads, run relabel on them
	bash internal/cluster/demo.sh

test: lint reproducible ## run every test, end to end on the local cluster
	RELABEL_TEST_KUBECONFIG=$$(bash $(CLUSTER) up relabel-test) \
		$(GO) test -race -count=1 -timeout 60m ./...
	cd internal/krewcheck && $(GO) test -count=1 ./...

test-short: ## only the tests that need no cluster
	$(GO) test -short -count=1 ./...
	cd internal/krewcheck && $(GO) test -short -count=1 ./...

lint:
	test -z "$$(gofmt -l . | tee /dev/stderr)"
	$(GO) vet ./...
	cd internal/krewcheck && $(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

cluster-up: ## start the local cluster and print its kubeconfig path
	@bash $(CLUSTER) up

cluster-down: ## delete the local clusters
	@bash $(CLUSTER) down
	@bash $(CLUSTER) down relabel-test

clean:
	rm -rf bin dist
