"""Inbound provider notifications: store, verify, apply once, answer as the provider expects."""
