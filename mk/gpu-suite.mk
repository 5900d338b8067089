# GPU figures in one command (bench/gpu_suite.sh): the wheels it installs on a GPU host with no
# network. The lent GPU host runs Python 3.12 with its own CUDA torch and takes at most 64 MiB
# with the working tree, so this folder holds only what that host lacks, for CPython 3.12 on
# x86-64 (bench/gpu_wheels.py says what and why): this project's own wheel, snac,
# mistral-common and the dependencies missing there, numpy 2.3.5 (the host's is above the cap).
# Resolved by pip's dry run (~5 min once), then downloaded by exact version. Take the folder to
# the host beside the working tree (the device tool: carry .whl/gpu-suite); `.whl/` is ignored.

GPU_WHEELS ?= .whl/gpu-suite
GPU_WHEELS_TARGET := --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
	--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	--platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
	--platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64
GPU_WHEELS_PIP := $(PYTHON) -m pip -q --disable-pip-version-check

$(GPU_WHEELS)/.complete: pyproject.toml setup.py bench/gpu_wheels.py
	rm -rf $(GPU_WHEELS) && mkdir -p $(GPU_WHEELS)
	$(GPU_WHEELS_PIP) wheel --no-deps -w $(GPU_WHEELS) .
	$(PYTHON) bench/gpu_wheels.py requirements > $(GPU_WHEELS)/requirements.txt
	$(GPU_WHEELS_PIP) install --dry-run --ignore-installed $(GPU_WHEELS_TARGET) --target $(GPU_WHEELS)/.resolve \
		--report $(GPU_WHEELS)/resolved.json $(GPU_WHEELS)/voxmesh-*.whl -r $(GPU_WHEELS)/requirements.txt
	$(PYTHON) bench/gpu_wheels.py pins $(GPU_WHEELS)/resolved.json > $(GPU_WHEELS)/pins.txt
	$(GPU_WHEELS_PIP) download --no-deps $(GPU_WHEELS_TARGET) -d $(GPU_WHEELS) -r $(GPU_WHEELS)/pins.txt
	rm -rf $(GPU_WHEELS)/.resolve
	$(PYTHON) bench/gpu_wheels.py check $(GPU_WHEELS)
	touch $@

# This project's own wheel is rebuilt on every call (seconds): the suite installs the code
# from it, so it must be the working tree's, not the one of the last resolution.
gpu-wheels: $(GPU_WHEELS)/.complete
	rm -f $(GPU_WHEELS)/voxmesh-*.whl
	$(GPU_WHEELS_PIP) wheel --no-deps -w $(GPU_WHEELS) .
	$(PYTHON) bench/gpu_wheels.py check $(GPU_WHEELS)

# The suite itself on the CPU, tiny shapes (its end-to-end check; tests/unit/test_gpu_suite.py
# runs the same in `make test`).
gpu-suite-tiny: install-test
	PYTHON=$(PY) bench/gpu_suite.sh --tiny --out out/gpu-suite-tiny

.PHONY: gpu-wheels gpu-suite-tiny

# The overlay install's test (tests/deploy/test_gpu_overlay_install.py, in `make test`) runs the
# suite's install step from the real $(GPU_WHEELS) into a Python 3.12 venv standing in for the GPU
# host (tests/deploy/gpu_host.py): metadata-only stand-ins for torch, CUDA and transformers, and
# the host's small packages for real, whose wheels this downloads (~30 MiB, by exact version).
GPU_HOST ?= .whl/gpu-host
# The GPU host's Python is 3.12: python3.12 on PATH, else pyenv's.
GPU_HOST_PYTHON ?= $(firstword $(foreach p,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12),\
	$(shell $(p) -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' 2>/dev/null)))

$(GPU_HOST)/.complete: $(GPU_WHEELS)/.complete tests/deploy/gpu_host.py
	@test -n "$(GPU_HOST_PYTHON)" || { echo "gpu-host: no Python 3.12 (python3.12 on PATH or ~/.pyenv/versions/3.12*):" \
		"the overlay install's test needs one to stand in for the GPU host; pyenv install 3.12, or GPU_HOST_PYTHON=..." >&2; exit 1; }
	rm -rf $(GPU_HOST) && mkdir -p $(GPU_HOST)/wheels
	$(PYTHON) tests/deploy/gpu_host.py pins $(GPU_WHEELS)/resolved.json > $(GPU_HOST)/pins.txt
	$(GPU_WHEELS_PIP) download --no-deps $(GPU_WHEELS_TARGET) -d $(GPU_HOST)/wheels -r $(GPU_HOST)/pins.txt
	ln -s $(GPU_HOST_PYTHON) $(GPU_HOST)/python3.12
	touch $@

gpu-host: gpu-wheels $(GPU_HOST)/.complete

TEST_DEPS += gpu-host

.PHONY: gpu-host
