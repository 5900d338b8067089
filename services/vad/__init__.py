"""vad service."""
