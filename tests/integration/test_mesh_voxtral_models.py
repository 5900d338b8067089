"""The real Voxtral architectures (tiny, random) in the whole mesh, as a client sees them.

voxtral runs the ``transformers`` engine with a tiny Voxtral 2507 for replies
and a tiny Voxtral Realtime for live transcripts; vad, orpheus (espeak) and
the gateway are the CPU mesh. The client streams a spoken sentence at
real-time pace through the SDK (``voxmesh talk``'s path) and must see partial
transcripts while it speaks, then the final one, the reply and the turn's
latency breakdown with Voxtral's first-token time. Random weights give random
text: the test asserts on order, counts and timing relations, not wording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Mesh
from voxmesh.services.voxtral.random_checkpoint import save_voxtral, save_voxtral_realtime
from voxmesh.synthetic_speech import speak
from voxmesh.talk import talk


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("voxtral-mesh")
    return save_voxtral(str(Path(root) / "tiny")), save_voxtral_realtime(str(Path(root) / "tiny-realtime"))


async def test_the_client_sees_live_partials_then_the_reply(
    start_mesh: Callable[..., Mesh], checkpoints: tuple[str, str]
) -> None:
    model, realtime = checkpoints
    mesh = start_mesh(
        voxtral_args=(
            "--engine", "transformers", "--model", model, "--realtime-model", realtime,
            "--device", "cpu", "--dtype", "float32", "--max-reply-tokens", "16", "--mode", "stream",
        )
    )  # fmt: skip
    result = await talk(speak("hello, please tell me about the weather today"), 16_000, mesh.address)
    assert result.session is not None and result.session.voxtral.engine == "transformers"
    assert not result.session.voxtral.is_fallback
    assert not result.errors, result.errors
    (turn,) = result.turns
    partials = [t for t in result.transcripts if not t.is_final]
    finals = [t for t in result.transcripts if t.is_final]
    # Partials while the user spoke, then one final transcript for the turn.
    assert len(partials) >= 2, result.transcripts
    assert len(finals) == 1 and result.transcripts[-1].is_final
    assert all(t.turn_id == turn.turn_id for t in result.transcripts)
    assert turn.transcript == finals[0].text
    # The reply was written (random words, up to 16 tokens) and spoken.
    assert turn.reply_text.strip() and result.audio
    lat = turn.latency
    # Made in the pause before the endpoint (speculation), so the marks may be negative; ordered.
    assert turn.speculative
    assert lat.voxtral_first_token_ms <= lat.first_phrase_ms <= lat.orpheus_first_audio_ms
    assert lat.orpheus_first_audio_ms <= lat.response_latency_ms < lat.voice_to_voice_ms
