# LiveKit Agents and Pipecat driving voxmesh through the Realtime edge (issue 21):
# tests/integration/test_frameworks.py runs each framework's own OpenAI Realtime
# client (tests/frameworks/*.py) in this test-only venv against the CPU mesh,
# which runs from the main venv; voxmesh itself is not installed here.
# The two frameworks co-install (checked: livekit-agents 1.8.9 +
# livekit-plugins-openai 1.8.9 + pipecat-ai[openai] 1.14.0, 760 MB; about 2 min
# cold on the 2-core runner, once; nothing compiles).
FRAMEWORKS_VENV ?= .venv-frameworks
FRAMEWORKS_PY := $(FRAMEWORKS_VENV)/bin/python
LIVEKIT_AGENTS_VERSION ?= 1.8.9
PIPECAT_VERSION ?= 1.14.0

$(FRAMEWORKS_VENV)/.installed: mk/frameworks.mk
	$(PYTHON) -m venv $(FRAMEWORKS_VENV)
	$(FRAMEWORKS_PY) -m pip install -q --disable-pip-version-check \
	  "livekit-agents==$(LIVEKIT_AGENTS_VERSION)" "livekit-plugins-openai==$(LIVEKIT_AGENTS_VERSION)" \
	  "pipecat-ai[openai]==$(PIPECAT_VERSION)"
	touch $@

frameworks-venv: $(FRAMEWORKS_VENV)/.installed

# make test builds it, and a missing or broken one fails those tests instead of skipping them.
test: export VOXMESH_REQUIRE_FRAMEWORKS := 1
TEST_DEPS += $(FRAMEWORKS_VENV)/.installed
.PHONY: frameworks-venv
