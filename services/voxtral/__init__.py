"""voxtral service."""
