"""conversation.item.create and response.create fields: what the frameworks send is taken, the rest named."""

from __future__ import annotations

from typing import Any

import pytest

from voxmesh.realtime.client_events import MessageItem, ResponseParams, message_item, response_params
from voxmesh.realtime.protocol_error import ProtocolError


def test_pipecat_system_items_and_assistant_items_are_taken() -> None:
    system = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "It rains."}]}
    assert message_item(system) == MessageItem("system", "It rains.", None)
    assistant = {"id": "a1", "role": "assistant", "content": [{"type": "output_text", "text": "Hi."}]}
    assert message_item(assistant) == MessageItem("assistant", "Hi.", "a1")
    user = {
        "role": "user",
        "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
    }
    assert message_item(user) == MessageItem("user", "a\nb", None)


def test_livekit_response_create_keeps_instructions_and_metadata() -> None:
    params = {"instructions": "Greet.", "metadata": {"client_event_id": "response_create_1"}}
    assert response_params(params) == ResponseParams("Greet.", {"client_event_id": "response_create_1"})
    # Pipecat's: only the modality.
    assert response_params({"output_modalities": ["audio"]}) == ResponseParams(None, None)
    assert response_params(None) == ResponseParams(None, None)


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ("text", "item"),
        ({"type": "function_call_output"}, "item.type"),
        ({"role": "developer", "content": [{"type": "input_text", "text": "x"}]}, "item.role"),
        ({"role": [], "content": [{"type": "input_text", "text": "x"}]}, "item.role"),
        ({"role": "user", "content": []}, "item.content"),
        ({"role": "user", "content": [{"type": "output_text", "text": "x"}]}, "item.content[0].type"),
        ({"role": "system", "content": [{"type": {"x": 1}, "text": "x"}]}, "item.content[0].type"),
        ({"role": "system", "content": [{"type": "input_text", "text": " "}]}, "item.content[0].text"),
    ],
)
def test_bad_items_name_the_field(item: Any, param: str) -> None:
    with pytest.raises(ProtocolError) as err:
        message_item(item)
    assert err.value.param == param


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ([1], "response"),
        ({"temperature": 1}, "response.temperature"),
        ({"output_modalities": ["text"]}, "response.output_modalities"),
        ({"tools": [{"type": "function"}]}, "response.tools"),
        ({"instructions": 7}, "response.instructions"),
        ({"instructions": "x" * 8_001}, "response.instructions"),
        ({"metadata": "id"}, "response.metadata"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "response.metadata"),
        ({"metadata": {"client_event_id": 7}}, "response.metadata.client_event_id"),
    ],
)
def test_bad_response_params_name_the_field(params: Any, param: str) -> None:
    with pytest.raises(ProtocolError) as err:
        response_params(params)
    assert err.value.param == param
