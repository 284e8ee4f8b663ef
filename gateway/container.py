"""The services the app factory wires together, reachable from views via :func:`services`."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.services.circuit import CircuitRegistry
from gateway.services.clock import Clock
from gateway.services.registry import ProviderRegistry
from gateway.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    providers: ProviderRegistry
    clock: Clock
    http: requests.Session
    # Deliveries to portals go through their own session: provider traffic and portal traffic never share
    # connection pools or adapters.
    webhook_http: requests.Session
    circuits: CircuitRegistry  # per-provider circuit breakers (in-process, see gateway/services/circuit.py)

    @property
    def base_url(self) -> str:
        return self.settings.base_url


def services() -> Services:
    svc: Services = current_app.extensions["gateway"]
    return svc
