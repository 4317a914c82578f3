# opsbus developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
PYTEST := $(UV) run --frozen --all-packages pytest

.PHONY: help setup lint fmt typecheck test test-images images test-unit test-integration test-cluster docs docs-check bench \
        sandbox-install sandbox-up sandbox-down sandbox-status sandbox-chaos sandbox-heal sandbox-scale \
        demo demo-down test-e2e console console-client console-check test-browser

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install everything opsbus needs (uv, Python deps, nats-server, PostgreSQL), cached
	@bash tools/install-deps.sh

lint: setup ## ruff, mypy --strict and import-linter contracts
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/common/src $(wildcard services/*/src) $(wildcard tools/*/src) bench tests
	$(UV) run --frozen lint-imports

fmt: ## format and autofix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

docs: ## regenerate the event JSON Schemas and the AsyncAPI document in docs/
	$(UV) run --frozen python -m opsbus.common.events.docs --write docs

docs-check: console-check ## fail when docs/ event schemas (or the console's generated client) are stale
	$(UV) run --frozen python -m opsbus.common.events.docs --check docs

# The web console (console/, DESIGN.md section 9): built into the gateway's package, which serves it at `/`.
console: setup ## build the web console into the gateway package and check its JavaScript budget
	cd console && npm run build && npm run budget

console-client: setup ## regenerate the console's typed API client from the gateway's OpenAPI document
	$(UV) run --frozen python -m opsbus.gateway.openapi > console/openapi.json
	cd console && npx openapi-typescript openapi.json -o src/api/schema.d.ts

console-check: setup ## the console's client is current; its lint, types and component tests (vitest)
	$(UV) run --frozen python -m opsbus.gateway.openapi --check console/openapi.json
	cd console && npx openapi-typescript openapi.json -o src/api/schema.d.ts --check
	cd console && npm run lint && npm run typecheck && npm test

test-browser: console ## the console in Debian's Chromium (Playwright) against the real gateway, NATS, PostgreSQL
	$(PYTEST) -m browser tests/browser

test-unit: setup ## unit tests only (no network)
	$(PYTEST) -m "not integration and not cluster and not e2e"

test-integration: setup ## integration tests: real nats-server and PostgreSQL started by fixtures
	$(PYTEST) -m integration

test-cluster: setup sandbox-install ## cluster tests against the sandbox apiserver
	$(PYTEST) -m cluster

test-e2e: setup sandbox-install ## end-to-end scenarios: every service a process, real NATS, PostgreSQL, Jaeger, sandbox
	$(PYTEST) -m e2e tests/e2e

# The image tier (tests/images) runs inside `make test`, in the same pytest session as the cluster tier, so it reuses
# its sandbox. Its fixture runs `make images`'s script: the dependency images come from podman's store unless the
# lock changed; after a code change the seven thin images took 70 s and the tier 207 s here at load 1-11 (15-18 min
# at load 13-25 with six other engineers' work; a cold dependency install adds about 8 min). README "Docker".
test: lint docs-check console sandbox-install ## everything: lint, docs, unit, integration, cluster, e2e, browser, images
	$(PYTEST)

# OCI images without a registry (deploy/docker/build-images.sh): a debootstrap Debian base and uv from PyPI, cached
# under ~/.cache/opsbus/images; the dependency images (opsbus-deps, opsbus-deps-optimizer) keyed by the lock, each
# service image by the hash of its inputs, so a warm run rebuilds nothing and a code change no dependency.
images: setup console ## build the seven service images with podman (opsbus-<service>:dev), no registry needed
	@bash deploy/docker/build-images.sh

test-images: images sandbox-install ## the images as a user runs them, and docker-compose.yml up on podman against the sandbox
	$(PYTEST) tests/images

bench: setup ## benchmarks (results belong in docs/benchmarks.md)
	$(UV) run --frozen python bench/bus_throughput.py

sandbox-install: ## build the sandbox control plane from source (cached; cold build takes a while)
	@bash deploy/sandbox/sandbox.sh install

sandbox-up: sandbox-install ## start the sandbox cluster on 127.0.0.1
	@bash deploy/sandbox/sandbox.sh up

sandbox-down: ## stop the sandbox cluster
	@bash deploy/sandbox/sandbox.sh down

sandbox-status: ## show the sandbox cluster's state
	@bash deploy/sandbox/sandbox.sh status

sandbox-chaos: ## inject a fault: make sandbox-chaos FAULT=crashloop TARGET=pod/NAME NS=default
	@bash deploy/sandbox/sandbox.sh chaos $(FAULT) $(TARGET) $(NS)

sandbox-heal: ## remove a fault: make sandbox-heal FAULT=crashloop TARGET=pod/NAME NS=default
	@bash deploy/sandbox/sandbox.sh heal $(FAULT) $(TARGET) $(NS)

sandbox-scale: sandbox-up ## scale mode: make sandbox-scale NODES=1000 PODS=10000 (fake nodes, pods run by kwok)
	@bash deploy/sandbox/sandbox.sh scale $(or $(NODES),1000) $(or $(PODS),10000)

# Shipping (deploy/helm, docker-compose.yml, deploy/docker, deploy/observability); checked by tests/deploy.
.PHONY: chart-lint chart-template test-deploy
OPSBUS_CACHE_DIR ?= $(HOME)/.cache/opsbus
HELM_VERSION := $(shell sed -n 's/^HELM_VERSION=//p' tools/versions.env)
HELM := $(OPSBUS_CACHE_DIR)/helm/$(HELM_VERSION)/helm
CHART := deploy/helm/opsbus
# helm built by `go install` has no Kubernetes version stamp (it would assume v1.20): render for the sandbox's.
KUBE_VERSION := $(shell sed -n 's/^KUBE_VERSION=//p' deploy/sandbox/versions.env)

chart-lint: setup ## helm lint the chart with the default and the production-like values
	$(HELM) lint --strict --kube-version $(KUBE_VERSION) $(CHART)
	$(HELM) lint --strict --kube-version $(KUBE_VERSION) $(CHART) --values $(CHART)/ci/production-values.yaml

chart-template: setup ## render the chart: make chart-template VALUES=deploy/helm/opsbus/ci/production-values.yaml
	$(HELM) template opsbus $(CHART) --namespace opsbus --kube-version $(KUBE_VERSION) $(if $(VALUES),--values $(VALUES))

test-deploy: setup sandbox-install ## the shipping checks: chart, schema, least privilege (sandbox), compose, Dockerfile, dashboards, rules
	$(PYTEST) tests/deploy

demo: setup console sandbox-install ## the whole platform on this machine (sandbox, NATS, PostgreSQL, Jaeger, 7 services); Ctrl-C stops
	@$(UV) run --frozen python -m opsbus.demo up

demo-down: ## stop a `make demo` running in another terminal
	@$(UV) run --frozen python -m opsbus.demo down
