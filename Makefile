# Safe ML deployment pipeline. `make` lists the targets; `make deploy` and `make test` set everything up.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
LOCAL_STAMP := $(VENV)/.synced-local
BIN := $(VENV)/bin
DEMO_DATA := build/demo-data/mlc_churn.csv
DATA ?=
AUTO_APPROVE ?=
FAULT ?=
COMMENT ?=
ENV ?= dev
TARGET ?= local
YES ?=
# Only from the command line (`make rollback VERSION=2`): an exported VERSION or MODEL in the shell is not a choice.
VERSION :=
MODEL :=
TEST_WORKERS ?= auto
GROUPS ?=

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# checkov pins boto3==1.35.49, so it lives in its own tool virtualenv, installed from a compiled requirements file.
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

BENCH_VENV := .bench/mlflow
EVIDENTLY_VENV := .bench/evidently

.PHONY: help venv lock browser synth plan apply destroy deploy approve reject rollback deployments status retry registry outputs console monitor notebook report stop test chaos mutate bench lint fmt pr clean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: Python 3.11 is required (or set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Two syncs of the one .venv. `make deploy` and the other operating targets need only what a local deployment
# imports (LOCAL_STAMP: the core and the demo data's package); `make test`, `lint`, `plan`, ... add the dev, infra
# (CDKTF: 213 MB of provider bindings a local deployment never imports) and notebook groups and the aws extra
# (STAMP). --inexact: the local sync never removes what the full one installed.
# --compile-bytecode: every pipeline stage, training job and serving worker is a fresh interpreter, and with
# PYTHONDONTWRITEBYTECODE set (as in CI images) each would recompile what it imports; the cdktf AWS bindings alone
# take 75 s to import from source and 24 s from bytecode.
$(LOCAL_STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --inexact --no-default-groups --extra demo --compile-bytecode
	@touch $@

# The notebook's kernel is registered inside .venv (--sys-prefix: nothing written to the user's Jupyter folders);
# Jupyter, VS Code and nbclient started from .venv list it as "safedeploy (.venv)".
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra demo --extra aws --compile-bytecode
	$(BIN)/python -m ipykernel install --sys-prefix --name safedeploy --display-name "safedeploy (.venv)" >/dev/null
	@touch $@ $(LOCAL_STAMP)

$(CHECKOV): tools/checkov/requirements.txt | $(UV)
	rm -rf $(CHECKOV_VENV)
	env -u UV_PROJECT_ENVIRONMENT $(UV) venv -q --python $(PYTHON) $(CHECKOV_VENV)
	VIRTUAL_ENV=$(abspath $(CHECKOV_VENV)) $(UV) pip install -q --compile-bytecode -r tools/checkov/requirements.txt
	@touch $@

venv: $(STAMP) ## Create or update .venv exactly from uv.lock, every group, and register its notebook kernel (the other targets do this themselves)

lock: | $(UV) ## Re-resolve uv.lock after editing pyproject.toml
	$(UV) lock

$(DEMO_DATA): scripts/demo_data.py | $(LOCAL_STAMP)
	$(BIN)/python scripts/demo_data.py $@

deploy: $(LOCAL_STAMP) $(if $(DATA),,$(DEMO_DATA)) ## Data -> Train -> gate -> Baseline -> Register -> DeployDev -> approval -> DeployPrd (DATA=, AUTO_APPROVE=1, FAULT=; TARGET=aws uploads the data to the applied base infra, which starts CodePipeline)
	$(BIN)/safedeploy run --target $(TARGET) --data "$(or $(DATA),$(DEMO_DATA))" --trigger "make deploy" $(if $(filter 1 true yes,$(AUTO_APPROVE)),--auto-approve) $(if $(FAULT),--set production.fault=$(FAULT))

approve: $(LOCAL_STAMP) ## Approve the execution waiting at the approval gate and resume it (COMMENT='why' required)
	$(BIN)/safedeploy approve --target $(TARGET) --comment "$(COMMENT)"

reject: $(LOCAL_STAMP) ## Reject the execution waiting at the approval gate (COMMENT='why' required)
	$(BIN)/safedeploy reject --target $(TARGET) --comment "$(COMMENT)"

rollback: $(LOCAL_STAMP) ## Return production to the version that served before the current one (VERSION=n: to any version that served before); a blue/green deployment of it, all at once
	$(BIN)/safedeploy rollback --target $(TARGET) $(if $(VERSION),--version $(VERSION))

deployments: $(LOCAL_STAMP) ## The production deployment ledger: versions, outcome, rollback reasons
	$(BIN)/safedeploy deployments

status: $(LOCAL_STAMP) ## Show the latest execution, stage by stage, with durations (TARGET=aws: the CodePipeline's)
	$(BIN)/safedeploy status --target $(TARGET)

retry: $(LOCAL_STAMP) ## Resume the latest failed execution from its failed stage (TARGET=aws: RetryStageExecution)
	$(BIN)/safedeploy retry --target $(TARGET)

registry: $(LOCAL_STAMP) ## List the registered model versions: approval, where each serves (* = production), rollbacks (TARGET=aws: SageMaker's registry)
	$(BIN)/safedeploy registry list --target $(TARGET)

outputs: $(LOCAL_STAMP) ## Print the stack outputs as JSON: ApiUrl, ApiKey, EndpointName, RuntimeUrl, ...
	@$(BIN)/safedeploy outputs

console: $(LOCAL_STAMP) ## Print a one-time link (5 minutes) to the runtime's live console: stages, approval buttons, traffic, charts, ledger
	@$(BIN)/safedeploy console

monitor: $(LOCAL_STAMP) ## Run data-quality monitoring on production's capture now (since the previous run): summary, violations, alarms, report path
	$(BIN)/safedeploy monitor run --trigger "make monitor"

notebook: $(STAMP) $(if $(DATA),,$(DEMO_DATA)) ## Run notebooks/pipeline.ipynb headless on the .venv kernel, approving with COMMENT= -> build/notebook/pipeline.ipynb with outputs (DATA=)
	DATA="$(abspath $(or $(DATA),$(DEMO_DATA)))" NOTEBOOK_DECISION=approve NOTEBOOK_COMMENT="$(or $(COMMENT),reviewed in the notebook run by make notebook)" \
		$(BIN)/python scripts/run_notebook.py notebooks/pipeline.ipynb build/notebook/pipeline.ipynb

report: $(LOCAL_STAMP) ## Write one self-contained HTML report (build/report/report.html): execution timeline, ROC/PR curves, traffic shifts, drift, quality, ledger
	$(BIN)/safedeploy report

stop: $(LOCAL_STAMP) ## Stop the local runtime (endpoints and REST API); `make deploy` starts it again
	$(BIN)/safedeploy runtime stop

# The report and console tests drive Debian's chromium with Playwright. As root with apt-get, `make test` installs it
# (about 10 s); elsewhere it says so once and those tests skip, naming the reason.
CHROMIUM ?= /usr/bin/chromium
export SAFEDEPLOY_CHROMIUM := $(CHROMIUM)

browser: ## Install Debian's chromium for the browser tests if it is missing (root + apt-get)
	@scripts/ensure_chromium.sh "$(CHROMIUM)"

test: $(STAMP) $(CHECKOV) browser ## Run the test suite (includes ruff, mypy, cfn-lint, checkov, terraform validate/plan); TEST_WORKERS=0 runs it in this process
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

chaos: $(STAMP) ## The chaos suite at full size (fuzzing, kills, full disk, floods, CPU contention; loopback only) -> build/chaos/
	CHAOS_FULL=1 $(BIN)/pytest -n 0 tests/chaos

mutate: $(STAMP) ## Mutation testing (mutmut) of the gate, alarms, blue/green, API-key check, atomic writes, smoke test -> build/mutate/ (GROUPS= picks some)
	$(BIN)/python scripts/mutate.py $(GROUPS)

$(BENCH_VENV)/bin/mlflow: bench/requirements-mlflow.txt | $(UV)
	rm -rf $(BENCH_VENV)
	env -u UV_PROJECT_ENVIRONMENT $(UV) venv -q --python $(PYTHON) $(BENCH_VENV)
	VIRTUAL_ENV=$(abspath $(BENCH_VENV)) $(UV) pip install -q -r bench/requirements-mlflow.txt

$(EVIDENTLY_VENV)/bin/python: bench/requirements-evidently.txt | $(UV)
	rm -rf $(EVIDENTLY_VENV)
	env -u UV_PROJECT_ENVIRONMENT $(UV) venv -q --python $(PYTHON) $(EVIDENTLY_VENV)
	VIRTUAL_ENV=$(abspath $(EVIDENTLY_VENV)) $(UV) pip install -q -r bench/requirements-evidently.txt

bench: $(STAMP) $(DEMO_DATA) $(BENCH_VENV)/bin/mlflow $(EVIDENTLY_VENV)/bin/python ## Benchmarks: first deploy on a fresh clone (set-up included), deploy wall time, serving vs `mlflow models serve`, monitoring 1M records vs Evidently -> build/bench/
	$(BIN)/python bench/first_deploy.py
	$(BIN)/python bench/deploy.py --data $(DEMO_DATA)
	$(BIN)/python bench/serving.py --data $(DEMO_DATA) --mlflow-python $(BENCH_VENV)/bin/python
	$(BIN)/python bench/monitoring.py --data $(DEMO_DATA) --evidently-python $(EVIDENTLY_VENV)/bin/python

lint: $(STAMP) $(CHECKOV) ## Static checks: ruff (lint + format), mypy, vermin (shipped code vs the container's and Lambda's Python), the policy gates (cfn-lint, checkov)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/python_compat.py
	$(BIN)/python scripts/policy_gates.py --checkov $(CHECKOV)

synth: $(STAMP) ## Synthesize the CDKTF base infrastructure into terraform/<env>/cdk.tf.json (dev, prod)
	$(BIN)/python -m cdktf_app synth --out terraform

plan: $(STAMP) ## Synth, then terraform init + plan ENV=dev|prod; saved plan + summary in build/terraform/<env>/ (moto without AWS credentials)
	$(BIN)/python scripts/plan.py --env $(ENV)

apply: $(STAMP) ## terraform apply the plan `make plan` saved for ENV (an AWS plan only; asks first, YES=1 skips)
	$(BIN)/python scripts/plan.py --env $(ENV) --apply $(if $(filter 1 true yes,$(YES)),--yes)

destroy: $(LOCAL_STAMP) ## Delete what the pipeline created: TARGET=local (runtime + state) or aws (stacks, then base infra); MODEL=name: that model's pipeline only; asks first, YES=1 skips
	$(BIN)/safedeploy destroy --target $(TARGET) $(if $(MODEL),--model $(MODEL)) $(if $(filter 1 true yes,$(YES)),--yes)

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pr: lint test ## Every check a change must pass before it lands

clean: ## Stop the local runtime, remove local pipeline state (.safedeploy) and build outputs
	-[ ! -x $(BIN)/safedeploy ] || $(BIN)/safedeploy runtime stop
	rm -rf .safedeploy build
