"""Test support: tiny checkpoints of every model family (families.py), importable from the tests."""
