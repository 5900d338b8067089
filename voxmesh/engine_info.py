"""What an engine says about itself; sent first on every internal stream."""

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineInfo:
    #: The name given to ``--engine``.
    engine: str
    #: Model id or path; empty for engines without a model.
    model: str = ""
    #: True for stand-ins that are not the real model (``echo``, ``espeak``).
    is_fallback: bool = False
    #: voxtral: how tool calls are made ("model", a stand-in's rule); empty: none.
    tool_calls: str = ""
