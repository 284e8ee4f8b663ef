"""Citizen pages (contract §5). Placeholder until the pages land."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask


def init_web(app: Flask) -> Callable[[int, str, str], Any] | None:
    return None
