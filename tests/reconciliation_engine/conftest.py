from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.reconciliation_engine.world import World


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    return World(sessions, tmp_path).setup()
