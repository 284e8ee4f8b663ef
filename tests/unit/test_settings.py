from __future__ import annotations

import pytest

from gateway.services.registry import build_registry
from gateway.settings import DEFAULT_JANITOR_SCHEDULE, ConfigError, load_settings


def env(tmp_path, **extra: str) -> dict[str, str]:
    return {"GATEWAY_INSTANCE_PATH": str(tmp_path), **extra}


def test_defaults_are_the_embedded_ones(tmp_path):
    s = load_settings(env(tmp_path))
    assert s.database_url == "sqlite:///instance/gateway.db"
    assert s.broker_url is None
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.janitor_schedule == DEFAULT_JANITOR_SCHEDULE
    assert sum(s.webhook_retry_schedule) >= 24 * 3600
    assert all(p.emulated for p in s.providers.values())
    assert s.api_rate_limit == "600 per minute"
    assert load_settings(env(tmp_path, API_RATE_LIMIT="20/second")).api_rate_limit == "20/second"
    both = "100 per minute; 2000 per hour"
    assert load_settings(env(tmp_path, API_RATE_LIMIT=both)).api_rate_limit == both


def test_secret_key_is_generated_once_into_instance(tmp_path):
    first = load_settings(env(tmp_path)).secret_key
    assert len(first) == 64
    assert load_settings(env(tmp_path)).secret_key == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"VNPAY_TMN_CODE": "ABC"}, "VNPAY_HASH_SECRET"),
        ({"GATEWAY_BASE_URL": "ftp://x"}, "GATEWAY_BASE_URL"),
        ({"JANITOR_SCHEDULE": "300,abc"}, "JANITOR_SCHEDULE"),
        ({"WEBHOOK_RETRY_SCHEDULE": "0"}, "WEBHOOK_RETRY_SCHEDULE"),
        ({"GATEWAY_ENV": "staging"}, "GATEWAY_ENV"),
        ({"JOBS_TICK_SECONDS": "soon"}, "JOBS_TICK_SECONDS"),
        ({"API_RATE_LIMIT": "lots"}, "API_RATE_LIMIT"),
        ({"API_RATE_LIMIT": "0 per minute"}, "API_RATE_LIMIT"),
    ],
)
def test_bad_configuration_is_a_startup_error(tmp_path, extra, names):
    with pytest.raises(ConfigError, match=names):
        load_settings(env(tmp_path, **extra))


def test_production_disables_providers_without_credentials(tmp_path):
    s = load_settings(env(tmp_path, GATEWAY_ENV="production", SECRET_KEY="x"))
    registry, skipped = build_registry(s)
    assert registry.codes() == []
    assert any("vnpay" in reason and "production" in reason for reason in skipped)


def test_real_credentials_enable_the_provider_in_production(tmp_path):
    s = load_settings(
        env(
            tmp_path,
            GATEWAY_ENV="production",
            SECRET_KEY="x",
            VNPAY_TMN_CODE="TESTTMN1",
            VNPAY_HASH_SECRET="new-secret,old-secret",
            VNPAY_PAY_URL="https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
            VNPAY_API_URL="https://sandbox.vnpayment.vn/merchant_webapi/api/transaction",
        )
    )
    registry, _ = build_registry(s)
    provider = registry.get("vnpay")
    assert provider.emulated is False


def test_unknown_provider_in_the_enabled_list_is_refused(tmp_path):
    s = load_settings(env(tmp_path, GATEWAY_PROVIDERS="vnpay,paypal"))
    with pytest.raises(ConfigError, match="paypal"):
        build_registry(s)


def test_enabled_list_selects_providers(tmp_path):
    registry, _ = build_registry(load_settings(env(tmp_path, GATEWAY_PROVIDERS="vnpay")))
    assert registry.codes() == ["vnpay"]
