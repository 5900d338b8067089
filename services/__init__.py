"""The gRPC services behind the gateway: vad, voxtral, orpheus."""
