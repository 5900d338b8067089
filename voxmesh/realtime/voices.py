"""OpenAI's Realtime voice names → Orpheus voices.

Clients written for OpenAI send its voice names by default (LiveKit's
``RealtimeModel`` sends ``marin``). They map onto the Orpheus 3B voices by
this table (female to female, male to male; alloy, OpenAI's neutral voice,
to zoe). Any other name goes to the gateway as it is: an Orpheus name is
used, and a name neither side knows falls back to the mesh's default voice
with a ``voxmesh.warning`` event (connection.py), never an ``error``.
"""

from __future__ import annotations

#: OpenAI voice → Orpheus voice (services/orpheus/voices.py: tara leah jess leo dan mia zac zoe).
OPENAI_VOICES: dict[str, str] = {
    "marin": "tara",
    "coral": "leah",
    "shimmer": "jess",
    "sage": "mia",
    "alloy": "zoe",
    "cedar": "leo",
    "echo": "leo",
    "ash": "dan",
    "verse": "dan",
    "ballad": "zac",
}


def orpheus_voice(name: str) -> str:
    """The voice the gateway is asked for: an OpenAI name's Orpheus voice, else ``name`` itself."""
    return OPENAI_VOICES.get(name.lower(), name)
