# multinic — the two promises of the README:
#   make demo   the main job: the lab (3 nodes x 4 pods, primary + 2 secondaries, SQLite), then down
#   make test   install everything the tests need, then lint, type-check and test
# Both run as root on a fresh Debian machine.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
NATIVE_SHIM = src/multinic/native/multinic-shim

.PHONY: demo test install demo-deps system-deps third-party anchors anchors-smoke lint typecheck pytest bench clean

demo: demo-deps install
	$(BIN)/multinic lab up --name mndemo --nodes 3 --pods 4 --secondaries 2 --picture lab.html --down-after

test: system-deps third-party install lint typecheck pytest

install: $(VENV)/.installed $(NATIVE_SHIM)

# The compiled shim (native/multinic-shim.c; docs/node.md): `multinic install-plugins`
# installs it when it was built, the Python shim otherwise. Skipped without a C compiler.
$(NATIVE_SHIM): native/multinic-shim.c
	@if command -v cc >/dev/null; then \
		mkdir -p $(dir $@) && cc -O2 -Wall -Wextra -Werror -o $@ $<; \
	else echo "no C compiler: the Python multinic-shim will be installed"; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Only what the lab needs (iproute2, nftables, a Python venv).
demo-deps:
	scripts/install-system-deps demo

system-deps:
	scripts/install-system-deps test

# kube-apiserver, etcd, the reference plugins, libcni, ... from their Go modules
# (third_party/programs), into /var/cache/multinic/third-party; cached builds are reused.
# The `node` group (kubelet, kube-scheduler) is for the real-pods tests (tests/e2e/kubelet).
third-party:
	scripts/build-third-party test node

# Multus thick and Whereabouts, for the side-by-side benchmarks (not needed by the tests).
anchors:
	scripts/build-third-party anchors

# Whereabouts and Multus thick really run against a fresh test control plane
# (benchmarks/anchors_smoke.py; docs/testing.md). Root; not part of `make test`.
anchors-smoke: third-party anchors install
	$(BIN)/python benchmarks/anchors_smoke.py

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

# MULTINIC_NO_SKIP turns any skipped or xfail test into a failure (tests/conftest.py):
# on the CI machine (root, packages installed by system-deps) every test must really run.
pytest: install
	MULTINIC_NO_SKIP=1 $(BIN)/pytest

bench: system-deps install
	$(BIN)/python benchmarks/cni_runtime.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
