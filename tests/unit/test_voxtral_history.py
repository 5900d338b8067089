"""Conversation history: token budgets (the system prompt counted), system prompt kept, barge-in amends."""

from __future__ import annotations

import pytest

from voxmesh.services.voxtral.engine import Message
from voxmesh.services.voxtral.history import History


def words(text: str) -> int:
    return len(text.split())


def make(system_prompt: str, context_tokens: int, history_tokens: int = 10_000) -> History:
    return History(system_prompt, words, context_tokens=context_tokens, history_tokens=history_tokens)


def test_prompt_is_system_then_exchanges_then_the_new_turn() -> None:
    history = make("be brief", 100)
    history.record(1, "hi there", "hello")
    prompt = history.messages(Message("user", "how are you"))
    assert [(m.role, m.text) for m in prompt] == [
        ("system", "be brief"),
        ("user", "hi there"),
        ("assistant", "hello"),
        ("user", "how are you"),
    ]


def test_oldest_exchanges_are_dropped_past_the_budget() -> None:
    history = make("", 10)
    history.record(1, "one two three", "four five")  # 5 tokens
    history.record(2, "six seven", "eight nine ten")  # 5 tokens: total 10, kept
    assert history.turn_ids == [1, 2]
    history.record(3, "eleven", "twelve")  # 12 > 10: turn 1 goes
    assert history.turn_ids == [2, 3]


def test_the_system_prompt_is_counted_and_old_turns_make_room_for_it() -> None:
    # The instructions ride on every prompt: their 6 tokens leave 4 of the 10 for past turns.
    history = make("a long system prompt never dropped", 10)
    assert history.system_tokens == 6 and history.turn_budget == 4
    history.record(1, "one two", "three")  # 3 tokens: kept
    assert history.turn_ids == [1]
    history.record(2, "four", "five six")  # 3 more: 6 > 4, so turn 1 goes
    assert history.turn_ids == [2]
    prompt = history.messages(Message("user", "x"))
    assert prompt[0].text == "a long system prompt never dropped"
    assert sum(words(m.text) for m in prompt[:-1]) <= 10


def test_history_tokens_caps_past_turns_where_the_context_has_room() -> None:
    history = make("be brief", 1000, history_tokens=5)
    history.record(1, "one two", "three")
    history.record(2, "four", "five six")  # 6 > 5
    assert history.turn_ids == [2]


def test_an_exchange_larger_than_the_budget_is_not_kept() -> None:
    history = make("", 3)
    history.record(1, "far too many words here", "and here")
    assert history.turn_ids == []
    assert [m.role for m in history.messages(Message("user", "x"))] == ["user"]


def test_a_turn_with_no_transcript_is_not_kept_so_roles_alternate() -> None:
    history = make("", 100)
    history.record(1, "hi", "hello")
    history.record(2, "  ", "a reply to a sound with no words")
    history.record(3, "bye", "goodbye")
    roles = [m.role for m in history.messages(Message("user", "x"))]
    assert roles == ["user", "assistant", "user", "assistant", "user"]


def test_amend_keeps_only_what_was_heard() -> None:
    history = make("", 100)
    history.record(4, "tell me a story", "Once upon a time there was a fox.")
    history.amend(4, "Once upon a time")
    assert history.messages(Message("user", "go on"))[1].text == "Once upon a time"


def servicer(**settings: object) -> object:
    from voxmesh.services.voxtral.null_engine import NullEngine
    from voxmesh.services.voxtral.servicer import VoxtralServicer
    from voxmesh.services.voxtral.settings import VoxtralSettings

    return VoxtralServicer(NullEngine(), VoxtralSettings(**settings))  # type: ignore[arg-type]


def test_context_budget_leaves_room_for_the_reply_and_this_turns_audio() -> None:
    from voxmesh.v1 import common_pb2

    def budget(mode: int = common_pb2.TURN_MODE_AUDIO, **kw: float) -> int:
        return servicer(**kw)._context_budget(mode)  # type: ignore[attr-defined,no-any-return]

    assert budget(max_model_len=2000, max_reply_tokens=256) == 2000 - 256 - 376
    # A 60 s utterance takes two 30 s encoder windows.
    assert budget(max_model_len=2000, max_reply_tokens=256, max_utterance_s=60) == 2000 - 256 - 2 * 376
    assert budget(max_model_len=500, max_reply_tokens=256) == 0
    # Text turns (stream mode, typed) keep room for a transcript, not for audio.
    assert budget(common_pb2.TURN_MODE_STREAM, max_model_len=2000, max_reply_tokens=256) == 2000 - 256 - 128


def test_a_sessions_history_counts_its_system_prompt_against_the_context() -> None:
    from voxmesh.v1 import common_pb2, voxtral_pb2

    config = voxtral_pb2.RespondConfig(mode=common_pb2.TURN_MODE_STREAM, system_prompt="word " * 600)
    svc = servicer(max_model_len=2000, max_reply_tokens=256, history_tokens=4096)
    history = svc._session(config).history  # type: ignore[attr-defined]
    # The null engine counts a word a token, plus one: 601 of the 1616 the context leaves.
    assert history.system_tokens == 601
    assert history.turn_budget == 2000 - 256 - 128 - 601


def test_a_system_prompt_that_leaves_no_room_to_answer_is_refused_naming_the_field() -> None:
    from voxmesh.errors import InvalidArgument
    from voxmesh.v1 import voxtral_pb2

    config = voxtral_pb2.RespondConfig(system_prompt="word " * 2000)
    with pytest.raises(InvalidArgument, match=r"^config\.system_prompt:"):
        servicer(max_model_len=2000, max_reply_tokens=256)._session(config)  # type: ignore[attr-defined]


def test_a_forgotten_exchange_leaves_no_trace() -> None:
    history = make("", 100)
    history.record(1, "what time is it", "You said: what time is it.")
    history.record(2, "and in paris", "noon")
    history.forget(1)  # a tentative reply the user spoke on past
    history.forget(7)  # unknown: nothing happens
    assert history.turn_ids == [2]
    prompt = history.messages(Message("user", "thanks"))
    assert [m.text for m in prompt] == ["and in paris", "noon", "thanks"]
