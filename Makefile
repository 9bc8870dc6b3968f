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
BIN := $(VENV)/bin
DEMO_DATA := build/demo-data/mlc_churn.csv
DATA ?=
AUTO_APPROVE ?=
FAULT ?=
COMMENT ?=
ENV ?= dev
TARGET ?= local
YES ?=
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

.PHONY: help venv lock synth plan apply destroy deploy approve reject rollback deployments status retry registry outputs monitor stop test chaos mutate bench lint fmt pr clean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: Python 3.11 is required (or set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every pipeline stage, training job and serving worker is a fresh interpreter, and with
# PYTHONDONTWRITEBYTECODE set (as in CI images) each would recompile what it imports; the cdktf AWS bindings alone
# (213 MB of Python) take 75 s to import from source and 24 s from bytecode.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra demo --extra aws --compile-bytecode
	@touch $@

$(CHECKOV): tools/checkov/requirements.txt | $(UV)
	rm -rf $(CHECKOV_VENV)
	env -u UV_PROJECT_ENVIRONMENT $(UV) venv -q --python $(PYTHON) $(CHECKOV_VENV)
	VIRTUAL_ENV=$(abspath $(CHECKOV_VENV)) $(UV) pip install -q --compile-bytecode -r tools/checkov/requirements.txt
	@touch $@

venv: $(STAMP) ## Create or update .venv exactly from uv.lock (the other targets do this themselves)

lock: | $(UV) ## Re-resolve uv.lock after editing pyproject.toml
	$(UV) lock

$(DEMO_DATA): scripts/demo_data.py | $(STAMP)
	$(BIN)/python scripts/demo_data.py $@

deploy: $(STAMP) $(if $(DATA),,$(DEMO_DATA)) ## Data -> Train -> gate -> Baseline -> Register -> DeployDev -> approval -> DeployPrd (DATA=, AUTO_APPROVE=1, FAULT=; TARGET=aws uploads the data to the applied base infra, which starts CodePipeline)
	$(BIN)/safedeploy run --target $(TARGET) --data "$(or $(DATA),$(DEMO_DATA))" --trigger "make deploy" $(if $(filter 1 true yes,$(AUTO_APPROVE)),--auto-approve) $(if $(FAULT),--set production.fault=$(FAULT))

approve: $(STAMP) ## Approve the execution waiting at the approval gate and resume it (COMMENT='why' required)
	$(BIN)/safedeploy approve --target $(TARGET) --comment "$(COMMENT)"

reject: $(STAMP) ## Reject the execution waiting at the approval gate (COMMENT='why' required)
	$(BIN)/safedeploy reject --target $(TARGET) --comment "$(COMMENT)"

rollback: $(STAMP) ## Return production to the previous model (a blue/green deployment of it, all at once)
	$(BIN)/safedeploy rollback

deployments: $(STAMP) ## The production deployment ledger: versions, outcome, rollback reasons
	$(BIN)/safedeploy deployments

status: $(STAMP) ## Show the latest execution, stage by stage, with durations (TARGET=aws: the CodePipeline's)
	$(BIN)/safedeploy status --target $(TARGET)

retry: $(STAMP) ## Resume the latest failed execution from its failed stage (TARGET=aws: RetryStageExecution)
	$(BIN)/safedeploy retry --target $(TARGET)

registry: $(STAMP) ## List the registered model versions and their approval status
	$(BIN)/safedeploy registry list

outputs: $(STAMP) ## Print the stack outputs as JSON: ApiUrl, ApiKey, EndpointName, RuntimeUrl, ...
	@$(BIN)/safedeploy outputs

monitor: $(STAMP) ## Run data-quality monitoring on production's capture now (since the previous run): summary, violations, alarms, report path
	$(BIN)/safedeploy monitor run --trigger "make monitor"

stop: $(STAMP) ## Stop the local runtime (endpoints and REST API); `make deploy` starts it again
	$(BIN)/safedeploy runtime stop

test: $(STAMP) $(CHECKOV) ## Run the test suite (includes ruff, mypy, cfn-lint, checkov, terraform validate/plan); TEST_WORKERS=0 runs it in this process
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

bench: $(STAMP) $(DEMO_DATA) $(BENCH_VENV)/bin/mlflow $(EVIDENTLY_VENV)/bin/python ## Benchmarks: deploy wall time, serving vs `mlflow models serve`, monitoring 1M records vs Evidently -> build/bench/
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

destroy: $(STAMP) ## Delete what the pipeline created: TARGET=local (runtime + state) or aws (stacks, then base infra); asks first, YES=1 skips
	$(BIN)/safedeploy destroy --target $(TARGET) $(if $(filter 1 true yes,$(YES)),--yes)

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pr: lint test ## Every check a change must pass before it lands

clean: ## Stop the local runtime, remove local pipeline state (.safedeploy) and build outputs
	-[ ! -x $(BIN)/safedeploy ] || $(BIN)/safedeploy runtime stop
	rm -rf .safedeploy build
