"""Voxtral Realtime's delay setting and mistral-common's online streaming prompt for it."""

from __future__ import annotations

import pytest

from voxmesh.errors import InvalidArgument
from voxmesh.services.voxtral.random_checkpoint import tekken_with_streaming_audio
from voxmesh.services.voxtral.realtime_transcriber import check_delay


@pytest.mark.parametrize("delay_ms", [240, 480, 560, 2400])
def test_delays_in_80_ms_steps_from_240_to_2400_are_accepted(delay_ms: int) -> None:
    assert check_delay(delay_ms) == delay_ms


@pytest.mark.parametrize("delay_ms", [0, 160, 200, 500, 2480])
def test_other_delays_are_refused_naming_the_setting(delay_ms: int) -> None:
    with pytest.raises(InvalidArgument, match=r"^realtime_delay_ms: .*240\.\.2400 ms in 80 ms steps"):
        check_delay(delay_ms)


@pytest.mark.parametrize(("delay_ms", "delay_tokens"), [(240, 3), (480, 6), (2400, 30)])
def test_the_online_streaming_prompt_follows_the_delay(
    tmp_path: object, delay_ms: int, delay_tokens: int
) -> None:
    import json
    from pathlib import Path

    from mistral_common.protocol.transcription.request import StreamingMode, TranscriptionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    path = Path(str(tmp_path)) / "tekken.json"
    path.write_text(json.dumps(tekken_with_streaming_audio()))
    tokenizer = MistralTokenizer.from_file(str(path))
    audio = tokenizer.instruct_tokenizer.audio_encoder.audio_config
    assert audio.is_streaming and audio.get_num_delay_tokens(delay_ms) == delay_tokens
    prompt = tokenizer.encode_transcription(
        TranscriptionRequest(audio="", streaming=StreamingMode.ONLINE, target_streaming_delay_ms=delay_ms)
    )
    pad = tokenizer.instruct_tokenizer.tokenizer.get_special_token("[STREAMING_PAD]")
    left = audio.n_left_pad_tokens
    # BOS, then a streaming pad per left-pad token and per delay token.
    assert prompt.tokens == [tokenizer.instruct_tokenizer.tokenizer.bos_id] + [pad] * (left + delay_tokens)
    left_pad, right_pad = prompt.audios
    assert len(left_pad.audio_array) == left * 1280  # 80 ms of 16 kHz per token
    assert len(right_pad.audio_array) == (delay_tokens + 1 + 10) * 1280
