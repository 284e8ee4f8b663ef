"""Plumbing of the provider contract suite: which providers, how to build them, what their Forge signs with.

Everything generic is asked of the provider (``providers.REGISTRY`` and the ``PaymentProvider`` class
attributes) or of its emulator module ``providers/emulators/<code>.py`` (``Forge``, ``create_blueprint``,
the blueprint's ``faults``). What cannot be asked lives in ONE table, :data:`PROVIDERS`. A new provider is
one module, one REGISTRY line, its emulator with a ``Forge`` and one row below: until it has them, importing
this file fails and the run stops with a message saying what to add (see :func:`contract_providers`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import pytest
import requests
from werkzeug.serving import make_server

import providers
from gateway.settings import ProviderCredentials
from providers.base import Ack, NotificationForge, Outcome, PaymentProvider
from providers.rsa_signing import generate_private_key_pem, public_key_pem

# Provider calls in the fault tests give up after SHORT_TIMEOUT; the emulator's "slow" fault sleeps longer.
SHORT_TIMEOUT = 0.5
SLOW_SECONDS = 1.0
# The faults every emulator's API honours (each emulator module's docstring): value set on blueprint.faults.
FAULTS: Mapping[str, Any] = {"slow": SLOW_SECONDS, "status": 503, "garbage": True}

# In a row's ``settings``: "write a fresh RSA private key of ours to a file and put its path here".
OWN_PRIVATE_KEY_FILE = "<a PEM file with our own RSA private key>"

AckAnswer = tuple[int, bytes | Mapping[str, Any]]


@dataclass(frozen=True)
class ProviderEntry:
    """What the suite cannot ask a provider or its Forge."""

    #: the ``secret`` the emulated provider's Forge signs with (what its emulator signs notifications with)
    emulator_secret: Callable[[Any], str]
    #: the variable whose comma list holds the keys that verify inbound messages (contract §2 rotation)
    inbound_keys: str
    #: the other variables of a real (not emulated) configuration
    settings: Mapping[str, str]
    #: True: ``inbound_keys`` lists public-key PEM files and the Forge signs with an RSA private key PEM;
    #: False: ``inbound_keys`` lists the HMAC secrets themselves
    rsa: bool = False
    #: documented answers to notifications (contract §6, providers.md, docs/rsabank.md §5.1):
    #: Ack -> (HTTP status, exact body bytes | items the JSON body must contain)
    acks: Mapping[Ack, AckAnswer] = field(default_factory=dict)


def _vnpay_ack(code: str, message: str) -> AckAnswer:
    return 200, b'{"RspCode":"%s","Message":"%s"}' % (code.encode(), message.encode())


def _rsabank_ack(status: int, code: str, message: str) -> AckAnswer:
    return status, b'{"code":"%s","message":"%s"}' % (code.encode(), message.encode())


# One row per registered provider: add a row here when you register a provider.
PROVIDERS: Mapping[str, ProviderEntry] = {
    "momo": ProviderEntry(
        emulator_secret=lambda p: p.secret,
        inbound_keys="MOMO_SECRET_KEY",
        settings={
            "MOMO_PARTNER_CODE": "MOMOCONTRACT",
            "MOMO_ACCESS_KEY": "contract-access-key",
            "MOMO_ENDPOINT": "https://momo.example.test",
        },
        acks={Ack.OK: (204, b"")},  # contract §6, providers.md §2.3
    ),
    "rsabank": ProviderEntry(
        emulator_secret=lambda p: p.emulator_bank_private_pem.decode(),
        inbound_keys="RSABANK_PUBLIC_KEYS",
        settings={
            "RSABANK_ENDPOINT": "https://bank.example.test",
            "RSABANK_PRIVATE_KEY": OWN_PRIVATE_KEY_FILE,
        },
        rsa=True,
        acks={  # docs/rsabank.md §5.1
            Ack.OK: _rsabank_ack(200, "00", "received"),
            Ack.NOT_FOUND: _rsabank_ack(200, "01", "unknown reference"),
            Ack.ALREADY: _rsabank_ack(200, "02", "already processed"),
            Ack.BAD_AMOUNT: _rsabank_ack(200, "04", "amount mismatch"),
            Ack.BAD_SIGNATURE: _rsabank_ack(401, "97", "invalid signature"),
            Ack.ERROR: _rsabank_ack(500, "99", "error, retry"),
        },
    ),
    "vietqr": ProviderEntry(
        emulator_secret=lambda p: p.emulator_private_key_pem().decode(),
        inbound_keys="VIETQR_BANK_PUBLIC_KEYS",
        settings={
            "VIETQR_BANK_BIN": "970436",
            "VIETQR_ACCOUNT_NO": "0011009999999",
            "VIETQR_ACCOUNT_NAME": "KHO BAC CONTRACT",
        },
        rsa=True,
    ),
    "vnpay": ProviderEntry(
        emulator_secret=lambda p: p.secret,
        inbound_keys="VNPAY_HASH_SECRET",
        settings={
            "VNPAY_TMN_CODE": "CONTRACT",
            "VNPAY_PAY_URL": "https://vnpay.example.test/paymentv2/vpcpay.html",
            "VNPAY_API_URL": "https://vnpay.example.test/merchant_webapi/api/transaction",
        },
        acks={  # contract §6, providers.md §1.5
            Ack.OK: _vnpay_ack("00", "Confirm Success"),
            Ack.NOT_FOUND: _vnpay_ack("01", "Order not found"),
            Ack.ALREADY: _vnpay_ack("02", "Order already confirmed"),
            Ack.BAD_AMOUNT: _vnpay_ack("04", "Invalid amount"),
            Ack.BAD_SIGNATURE: _vnpay_ack("97", "Invalid signature"),
            Ack.ERROR: _vnpay_ack("99", "Unknown error"),
        },
    ),
    "zalopay": ProviderEntry(
        emulator_secret=lambda p: p.key2,  # §3.3: ZaloPay signs callbacks with key2
        inbound_keys="ZALOPAY_KEY2",
        settings={
            "ZALOPAY_APP_ID": "2553",
            "ZALOPAY_KEY1": "contract-key1",
            "ZALOPAY_ENDPOINT": "https://zalopay.example.test",
        },
        acks={  # contract §6, providers.md §3.3
            Ack.OK: (200, b'{"return_code":1,"return_message":"success"}'),
            Ack.BAD_SIGNATURE: (200, {"return_code": -1}),
            Ack.ALREADY: (200, {"return_code": 2}),
            Ack.ERROR: (200, {"return_code": 0}),  # "ZaloPay server will call back again"
        },
    ),
}


class ContractSetupError(Exception):
    """A registered provider cannot be put under contract: says what to add, and where."""


@dataclass(frozen=True)
class ContractProvider:
    """One registered provider with everything the suite needs of it."""

    code: str
    provider_class: type[PaymentProvider]
    emulator: ModuleType
    forge_class: type[NotificationForge]
    entry: ProviderEntry

    @property
    def notifies_failures(self) -> bool:
        """Whether the provider notifies a failed payment (ZaloPay and a bank credit do not)."""
        return Outcome.FAILED in self.forge_class.result_codes.values()


def contract_providers(
    registry: Mapping[str, type[PaymentProvider]] | None = None,
    table: Mapping[str, ProviderEntry] | None = None,
) -> list[ContractProvider]:
    """Every provider of ``registry`` (default: ``providers.REGISTRY`` as it is now), sorted by code.

    Raises:
        ContractSetupError: a provider has no emulator module, no ``Forge``, no ``create_blueprint`` or no
            row in :data:`PROVIDERS`, or its Forge does not declare its protocol.
    """
    registry = providers.REGISTRY if registry is None else registry
    table = PROVIDERS if table is None else table
    found = []
    for code in sorted(registry):
        module_name = f"providers.emulators.{code}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise ContractSetupError(
                f"provider {code!r} is registered but has no emulator: add providers/emulators/{code}.py "
                "with create_blueprint(provider, *, ipn_url, http) and Forge(NotificationForge)"
            ) from exc
        forge = getattr(module, "Forge", None)
        if not (isinstance(forge, type) and issubclass(forge, NotificationForge)):
            raise ContractSetupError(
                f"provider {code!r}: providers/emulators/{code}.py defines no Forge(NotificationForge); "
                "the contract suite builds every notification with it"
            )
        if not callable(getattr(module, "create_blueprint", None)):
            raise ContractSetupError(
                f"provider {code!r}: providers/emulators/{code}.py has no create_blueprint"
            )
        entry = table.get(code)
        if entry is None:
            raise ContractSetupError(
                f"provider {code!r} has no row in tests/contract/conftest.py PROVIDERS: add a row here "
                "(its emulator's Forge secret and how a real configuration holds new,old keys)"
            )
        codes = forge.result_codes
        if codes.get(forge.success_code) is not Outcome.SUCCEEDED or not forge.signed_fields:
            raise ContractSetupError(
                f"provider {code!r}: Forge must map success_code {forge.success_code!r} to SUCCEEDED in "
                "result_codes and name the signed_fields to tamper with"
            )
        found.append(ContractProvider(code, registry[code], module, forge, entry))
    return found


CONTRACT: list[ContractProvider] = contract_providers()
BY_CODE: Mapping[str, ContractProvider] = {c.code: c for c in CONTRACT}
CODES: list[str] = [c.code for c in CONTRACT]


def emulated_credentials(code: str, instance_path: str) -> ProviderCredentials:
    """A provider with no variable set: it runs against the gateway's own emulator (contract §2, §10)."""
    return ProviderCredentials(code=code, values={}, emulated=True, instance_path=instance_path)


class CountingSession(requests.Session):
    """A session that remembers the URL of every request it sends (did the adapter call the network?)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request.url or "")
        return super().send(request, **kwargs)


# ---- the emulators, on a real socket (so that the adapters' timeouts really fire) -----------------------


@dataclass
class EmulatorServer:
    url: str
    blueprints: dict[str, flask.Blueprint]

    def faults(self, code: str) -> dict[str, Any]:
        faults = getattr(self.blueprints[code], "faults", None)
        if not isinstance(faults, dict):
            raise ContractSetupError(
                f"the {code} emulator blueprint has no faults dict (contract §10 emulators)"
            )
        return faults


@pytest.fixture(scope="session")
def emulator_server(emulator_instance: str) -> Iterator[EmulatorServer]:
    """Every provider's emulator on a bare Flask app served on a loopback port, for the whole session."""
    app = flask.Flask("contract-emulators")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    blueprints: dict[str, flask.Blueprint] = {}
    sessions: list[requests.Session] = []
    for contract in CONTRACT:
        session = requests.Session()
        sessions.append(session)
        provider = contract.provider_class(
            emulated_credentials(contract.code, emulator_instance), base_url=url, session=session
        )
        blueprint = contract.emulator.create_blueprint(
            provider, ipn_url=f"{url}/callbacks/{contract.code}", http=session
        )
        app.register_blueprint(blueprint, url_prefix=f"/_emulator/{contract.code}")
        blueprints[contract.code] = blueprint
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield EmulatorServer(url, blueprints)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        for session in sessions:
            session.close()


# ---- per test: one provider (tests parametrise ``code``) ------------------------------------------------


@pytest.fixture
def contract(code: str) -> ContractProvider:
    return BY_CODE[code]


@pytest.fixture
def faults(contract: ContractProvider, emulator_server: EmulatorServer) -> Iterator[dict[str, Any]]:
    """The provider's emulator fault switches, cleared after the test."""
    switches = emulator_server.faults(contract.code)
    switches.clear()
    yield switches
    switches.clear()


@pytest.fixture
def provider(
    contract: ContractProvider, emulator_server: EmulatorServer, emulator_instance: str
) -> Iterator[PaymentProvider]:
    """The emulated provider, talking to the emulator server with a short timeout."""
    session = CountingSession()
    built = contract.provider_class(
        emulated_credentials(contract.code, emulator_instance),
        base_url=emulator_server.url,
        session=session,
        timeout=SHORT_TIMEOUT,
    )
    yield built
    session.close()


@pytest.fixture
def forge(contract: ContractProvider, provider: PaymentProvider) -> NotificationForge:
    """The provider's notifications, signed as its emulator signs them."""
    return contract.forge_class(provider, contract.entry.emulator_secret(provider))


# ---- key rotation (contract §2) -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rsa_pems() -> dict[str, str]:
    """RSA private keys (PEM text), generated once: the bank's new and old key, a stranger's, ours."""
    return {name: generate_private_key_pem().decode() for name in ("new", "old", "neither", "own")}


@dataclass(frozen=True)
class RotationKeys:
    """Forge secrets: the current key, the previous one, and one the gateway never configured."""

    new: str
    old: str
    neither: str


@pytest.fixture
def rotation_keys(contract: ContractProvider, rsa_pems: dict[str, str]) -> RotationKeys:
    if contract.entry.rsa:
        return RotationKeys(rsa_pems["new"], rsa_pems["old"], rsa_pems["neither"])
    return RotationKeys("contract-new-secret", "contract-old-secret", "contract-neither-secret")


RotatedFactory = Callable[[Sequence[str]], PaymentProvider]


@pytest.fixture
def rotated_provider(contract: ContractProvider, rsa_pems: dict[str, str], tmp_path: Path) -> RotatedFactory:
    """Build the provider with a real configuration whose inbound keys are ``keys`` (new first)."""

    def pem_file(name: str, pem: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(pem)
        return str(path)

    def build(keys: Sequence[str]) -> PaymentProvider:
        entry = contract.entry
        if entry.rsa:
            paths = [pem_file(f"bank-{i}.pem", public_key_pem(key.encode())) for i, key in enumerate(keys)]
            inbound = ",".join(paths)
        else:
            inbound = ",".join(keys)
        values = {
            name: pem_file("own.pem", rsa_pems["own"].encode()) if value == OWN_PRIVATE_KEY_FILE else value
            for name, value in entry.settings.items()
        }
        values[entry.inbound_keys] = inbound
        credentials = ProviderCredentials(code=contract.code, values=values, emulated=False)
        return contract.provider_class(credentials, base_url="http://gateway.test")

    return build
