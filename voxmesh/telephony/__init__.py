"""The phone edge (``voxmesh serve telephony``): phone calls into the mesh over WebSocket media streams.

A separate process and a plain client of the gateway's ``Converse`` stream,
like the Realtime edge: each call is one Converse session. One module per
protocol, and one call bridge they share:

- :mod:`.call_frames`: what a phone side says, as typed frames (protocol-neutral), and :class:`.CallRefused`.
- :mod:`.twilio`: Twilio Media Streams JSON (also spoken by Telnyx, Exotel, Fonoster).
- :mod:`.call_bridge`: one call ⇄ one Converse session: audio, marks, barge-in ``clear``, DTMF.
- :mod:`.server`: the websockets server: routes, auth, health, metrics.
"""
