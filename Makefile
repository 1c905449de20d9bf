# Vitalbridge developer entry points. `make test` is what CI runs (via .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
COVERAGE_FLOOR ?= 95
PACKAGES := device_profiles simulators $(wildcard gateway)

.PHONY: demo test lint typecheck pytest bench install clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes, so repeated runs start in seconds.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The demo needs the simulators and, where mosquitto is missing, the embedded broker.
DEMO_STAMP := $(VENV)/.demo-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	rm -f $(VENV)/.demo-*
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/vitalbridge demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict $(PACKAGES)

# The uplink tests start their own mosquitto and the pairing page's browser test drives the
# distribution's chromium (Playwright's own browser download is not used); install them when missing.
system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
		echo "installing mosquitto (apt-get)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mosquitto; \
	fi
	@if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then \
		echo "installing chromium (apt-get) for the pairing page's browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	fi

# Coverage of every package is reported; the floor is enforced on the codecs.
pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest --cov --cov-report=term
	$(BIN)/python -m coverage report --include='device_profiles/*' --fail-under=$(COVERAGE_FLOOR) > /dev/null

test: lint typecheck pytest

$(VENV)/.bench-installed: pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/sim.py
	$(BIN)/python bench/uplink.py
	$(BIN)/python bench/fleet.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .hypothesis build *.egg-info
