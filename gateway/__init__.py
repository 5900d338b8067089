"""The client-facing gateway: stitches vad, voxtral and orpheus into one Converse stream."""
