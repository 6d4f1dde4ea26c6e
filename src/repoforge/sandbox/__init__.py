"""Sandboxes: one protocol, several backends."""
