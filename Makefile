# Two entry points a new machine needs: `make quickstart` (the main job) and `make test`.
# Both create .venv and install everything on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned here: an unpinned torch pulls a multi-GB CUDA build from the registry.
# constraints.txt pins the whole set verified together (regenerate with `pip freeze`).
TORCH_PIN := torch==2.13.0
PYTEST_ARGS ?= -n 2 --durations=15

.PHONY: setup devices-setup quickstart test test-fast clean

$(BIN)/ssc-deploy: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt "$(TORCH_PIN)" -e ".[dev]"
	touch $@

setup: $(BIN)/ssc-deploy

# Debian's adb client, OpenSSH server/client, qemu-user and the cached emulated arm64 rootfs
# (cached outside the repo, reused when present). Skips what this machine cannot do.
devices-setup: setup
	bash .ci/setup-devices.sh

quickstart: setup
	$(BIN)/ssc-deploy quickstart

test: setup devices-setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The development tier: no slow (training, whole-chain) and no emulated-device tests. CI runs `test`.
test-fast: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not slow and not emulated"

clean:
	rm -rf $(VENV) ssc-deploy-quickstart .pytest_cache
