"""Emulators speaking each provider's real wire protocol, mounted outside production (contract §10)."""

from __future__ import annotations
