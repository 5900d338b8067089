# Recorded human speech for the end-of-speech and end-of-turn tests and the
# end-of-turn bench: CMU's own test recordings, shipped in the pocketsphinx
# 5.0.4 sdist (BSD-2-Clause) — LibriVox audiobook sentences with word
# alignments, a digit string, "go forward ten meters", card names; 16 kHz mono.
#
# `pip download --no-binary` would build the sdist, so the archive is fetched
# as a file from PyPI's own storage and checked against its published sha256.

TOOLS_DIR ?= .tools
SPEECH_CORPUS_URL ?= https://files.pythonhosted.org/packages/ce/89/23e37c19bf30f0570088b7c4b548a666ca94331a6aa5a59b34402becc2d5/pocketsphinx-5.0.4.tar.gz
SPEECH_CORPUS_SHA256 := 17d2971e998490def9554b6ba41886708422af5b4ae888723b1b077aab0fe8d4
SPEECH_CORPUS_DIR ?= $(TOOLS_DIR)/speech
SPEECH_CORPUS := $(SPEECH_CORPUS_DIR)/.extracted

define VOXMESH_SPEECH_CORPUS_FETCH
import hashlib, os, shutil, sys, tarfile, urllib.request
url, digest, dest = sys.argv[1:4]
archive = os.path.join(dest, "pocketsphinx-5.0.4.tar.gz")
os.makedirs(dest, exist_ok=True)
if not os.path.isfile(archive):
    with urllib.request.urlopen(url, timeout=120) as answer, open(archive + ".tmp", "wb") as out:
        shutil.copyfileobj(answer, out)
    os.replace(archive + ".tmp", archive)
with open(archive, "rb") as f:
    got = hashlib.sha256(f.read()).hexdigest()
if got != digest:
    os.remove(archive)
    sys.exit(f"{archive}: sha256 {got}, expected {digest}")
prefix = "pocketsphinx-5.0.4/test/data/"
wanted = ("librivox/", "cards/", "numbers.raw", "goforward.raw", "something.raw")
with tarfile.open(archive) as tar:
    for member in tar.getmembers():
        name = member.name[len(prefix):] if member.name.startswith(prefix) else ""
        if member.isfile() and name.startswith(wanted):
            member.name = name
            tar.extract(member, dest, filter="data")
endef
export VOXMESH_SPEECH_CORPUS_FETCH

$(SPEECH_CORPUS): | $(PY)
	$(PY) -c "$$VOXMESH_SPEECH_CORPUS_FETCH" "$(SPEECH_CORPUS_URL)" $(SPEECH_CORPUS_SHA256) $(SPEECH_CORPUS_DIR)
	touch $@

.PHONY: speech-corpus
speech-corpus: $(SPEECH_CORPUS)

TEST_DEPS += $(SPEECH_CORPUS)
