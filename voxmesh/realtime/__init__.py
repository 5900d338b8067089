"""The OpenAI-Realtime-compatible WebSocket edge (``voxmesh serve realtime``).

A separate process and a plain client of the gateway's ``Converse`` stream:
each WebSocket is one Converse session. The gateway stays gRPC-only.

- :mod:`.protocol_error`: the ``error`` event's shape, raised anywhere a client event is refused.
- :mod:`.audio_formats`: ``audio/pcm``, ``audio/pcmu``, ``audio/pcma`` ⇄ PCM16 for the gateway.
- :mod:`.session_config`: ``session.update`` → the Converse config, and back to a session object.
- :mod:`.server_events`: builders of the server events, with their ids.
- :mod:`.connection`: one WebSocket's conversation (client events in, gateway events out).
- :mod:`.server`: the websockets server, auth, health, metrics.
"""
