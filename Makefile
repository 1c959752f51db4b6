# afk gateway. `make dev` and `make test` install what they need on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install dev test lint cfn-lint clean bench

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: install
	$(BIN)/afk dev $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff, mypy --strict over shared/afk (config in pyproject.toml), cfn-lint: CI runs it.
lint: install
	$(BIN)/ruff check shared tests
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

bench: install build
	cd bench && ../$(BIN)/python run.py
	$(BIN)/python -m bench.money_at_scale

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info shared/*.egg-info

# ---------------------------------------------------------------- AWS (SAM)
# The SAM CLI lives in its own venv (.venv-sam): its pins clash with the app's.
# `sam build` needs the runtime's Python (3.12) on PATH: the first that runs of
# python3.12 on PATH and pyenv's 3.12.x.
SAM_VENV := .venv-sam
SAM      := $(SAM_VENV)/bin/sam
PY312    := $(shell for p in $$(command -v python3.12) $(HOME)/.pyenv/versions/3.12*/bin/python3.12; do "$$p" -c '' 2>/dev/null && { echo "$$p"; break; }; done)
SAM_ENV  := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} PATH="$(dir $(PY312)):$$PATH"

.PHONY: sam build validate lock deploy

sam: $(SAM)

$(SAM):
	@test -n "$(PY312)" || { echo "need python3.12 (on PATH, or pyenv's ~/.pyenv/versions/3.12.*)"; exit 1; }
	$(PY312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli

# No Docker: the dependency layer fetches arm64 wheels (layers/dependencies/Makefile).
# --cached (samconfig.toml) rebuilds only what changed since the last build.
build: $(SAM)
	$(SAM_ENV) $(SAM) build --cached --parallel

validate: $(SAM)
	$(SAM_ENV) $(SAM) validate --lint

# Non-interactive: stack, S3 bucket, capabilities and every template parameter come from
# samconfig.toml ([default.deploy.parameters]; edit parameter_overrides there), the region
# from $AWS_REGION when set (else samconfig's). No prompt, no change-set confirmation:
# `sam deploy --guided` is the interactive way (README, "Deploy to AWS").
deploy: build
	$(SAM_ENV) $(SAM) deploy --no-confirm-changeset --no-fail-on-empty-changeset \
		$(if $(AWS_REGION),--region $(AWS_REGION))

# The dependency layer's lock, resolved for the functions' platform (arm64, CPython 3.12)
# whatever the host is, with the hashes of every file of every pinned version. Run it
# after editing layers/dependencies/requirements.in; the build installs only the lock.
lock: install
	$(BIN)/python -m uv --version >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet uv
	cd layers/dependencies && ../../$(BIN)/python -m uv pip compile --quiet requirements.in \
		--python-version 3.12 --python-platform aarch64-manylinux_2_28 --generate-hashes \
		--custom-compile-command "make lock" -o requirements.txt
