"""voxmesh: a self-hosted, real-time speech-to-speech assistant as a gRPC mesh."""

__version__ = "0.1.0"
