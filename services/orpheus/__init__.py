"""orpheus service."""
