"""Conversation history: token budget, system prompt kept, barge-in amends."""

from __future__ import annotations

from voxmesh.services.voxtral.engine import Message
from voxmesh.services.voxtral.history import History


def words(text: str) -> int:
    return len(text.split())


def test_prompt_is_system_then_exchanges_then_the_new_turn() -> None:
    history = History("be brief", 100, words)
    history.record(1, "hi there", "hello")
    prompt = history.messages(Message("user", "how are you"))
    assert [(m.role, m.text) for m in prompt] == [
        ("system", "be brief"),
        ("user", "hi there"),
        ("assistant", "hello"),
        ("user", "how are you"),
    ]


def test_oldest_exchanges_are_dropped_past_the_budget() -> None:
    history = History("a long system prompt that is never dropped", 10, words)
    history.record(1, "one two three", "four five")  # 5 tokens
    history.record(2, "six seven", "eight nine ten")  # 5 tokens: total 10, kept
    assert history.turn_ids == [1, 2]
    history.record(3, "eleven", "twelve")  # 12 > 10: turn 1 goes
    assert history.turn_ids == [2, 3]
    assert history.messages(Message("user", "x"))[0].text.startswith("a long system prompt")


def test_an_exchange_larger_than_the_budget_is_not_kept() -> None:
    history = History("", 3, words)
    history.record(1, "far too many words here", "and here")
    assert history.turn_ids == []
    assert [m.role for m in history.messages(Message("user", "x"))] == ["user"]


def test_amend_keeps_only_what_was_heard() -> None:
    history = History("", 100, words)
    history.record(4, "tell me a story", "Once upon a time there was a fox.")
    history.amend(4, "Once upon a time")
    assert history.messages(Message("user", "go on"))[1].text == "Once upon a time"


def test_history_budget_leaves_room_for_the_reply_and_this_turns_audio() -> None:
    from voxmesh.services.voxtral.null_engine import NullEngine
    from voxmesh.services.voxtral.servicer import VoxtralServicer
    from voxmesh.services.voxtral.settings import VoxtralSettings

    from voxmesh.v1 import common_pb2

    def budget(mode: int = common_pb2.TURN_MODE_AUDIO, **kw: float) -> int:
        return VoxtralServicer(NullEngine(), VoxtralSettings(**kw))._history_budget(mode)  # type: ignore[arg-type]

    assert budget(max_model_len=2000, max_reply_tokens=256, history_tokens=4096) == 2000 - 256 - 376
    assert budget(max_model_len=32768, max_reply_tokens=256, history_tokens=4096) == 4096
    # A 60 s utterance takes two 30 s encoder windows.
    assert budget(max_model_len=2000, max_reply_tokens=256, max_utterance_s=60) == 2000 - 256 - 2 * 376
    assert budget(max_model_len=500, max_reply_tokens=256) == 0
    # Text turns (stream mode, typed) keep room for a transcript, not for audio.
    assert budget(common_pb2.TURN_MODE_STREAM, max_model_len=2000, max_reply_tokens=256) == 2000 - 256 - 128
