# Smart Turn v3.2 (end-of-turn model, BSD-2-Clause) for the tests and `voxmesh
# serve vad --end-of-turn smart-turn --smart-turn-model .tools/models`.
#
# The pipecat-ai 1.14.0 wheel ships the unchanged upstream ONNX file; only that
# file is taken from it (pip download --no-deps, no pipecat install). Production
# may instead fetch it from the hub repo pipecat-ai/smart-turn-v3.

TOOLS_DIR ?= .tools
SMART_TURN_WHEEL ?= pipecat-ai==1.14.0
SMART_TURN_MODEL ?= $(TOOLS_DIR)/models/smart-turn-v3.2-cpu.onnx

define VOXMESH_SMART_TURN_EXTRACT
import glob, os, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
found = sorted(glob.glob(os.path.join(wheels, "pipecat_ai-1.14.0-*.whl")))
if not found:
    sys.exit(f"no pipecat_ai-1.14.0 wheel in {wheels}")
with zipfile.ZipFile(found[-1]) as whl:
    data = whl.read("pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx")
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".tmp", "wb") as out:
    out.write(data)
os.replace(dest + ".tmp", dest)
endef
export VOXMESH_SMART_TURN_EXTRACT

$(SMART_TURN_MODEL): | $(PY)
	@mkdir -p $(TOOLS_DIR)/wheels
	$(PY) -m pip download -q --disable-pip-version-check --no-deps "$(SMART_TURN_WHEEL)" -d $(TOOLS_DIR)/wheels
	$(PY) -c "$$VOXMESH_SMART_TURN_EXTRACT" $(TOOLS_DIR)/wheels $@

.PHONY: smart-turn-model
smart-turn-model: $(SMART_TURN_MODEL)

TEST_DEPS += $(SMART_TURN_MODEL)
