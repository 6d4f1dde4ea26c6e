"""Test commands and result parsing."""
