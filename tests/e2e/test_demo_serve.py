"""The README's first command, for real: ``gateway serve`` on the embedded default, paid through the
VNPAY emulator over HTTP (issue 3.2). Runs the installed console script in a scratch directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, str, Path]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"GATEWAY_BASE_URL": f"http://127.0.0.1:{port}", "PYTHONUNBUFFERED": "1"})
    gateway = shutil.which("gateway", path=str(Path(sys.executable).parent))
    assert gateway, "the console script is installed with the package"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(  # noqa: S603 - our own console script
        [gateway, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or the worker still booting
                time.sleep(0.1)
        else:
            pytest.fail("gateway serve did not come up:\n" + (tmp_path / "serve.log").read_text())
        output = (tmp_path / "serve.log").read_text()
        match = re.search(r"API key: (\S+)", output)
        assert match, output
        yield base, match.group(1), tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_serve_creates_sqlite_under_instance_and_pays_through_the_emulator(served):
    base, api_key, cwd = served
    assert (cwd / "instance" / "gateway.db").exists()
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok", "database": "ok"}

    auth = {"Authorization": f"Bearer {api_key}"}
    body = json.loads((ROOT / "examples" / "order.json").read_text())
    order = requests.post(f"{base}/api/v1/orders", json=body, headers=auth, timeout=10)
    assert order.status_code == 201, order.text
    order_id = order.json()["id"]
    assert order.json()["checkout_url"] == f"{base}/pay/{order_id}"

    attempt = requests.post(
        f"{base}/api/v1/orders/{order_id}/attempts", json={"provider": "vnpay"}, headers=auth, timeout=10
    )
    assert attempt.status_code == 201, attempt.text
    redirect_url = attempt.json()["redirect_url"]
    assert redirect_url.startswith(f"{base}/_emulator/vnpay/paymentv2/vpcpay.html?")

    page = requests.get(redirect_url, timeout=10)
    assert page.status_code == 200
    assert "58.000" in page.text
    query = urlsplit(redirect_url).query
    paid = requests.post(
        f"{base}/_emulator/vnpay/paymentv2/pay",
        data={"query": query, "outcome": "success"},
        allow_redirects=False,
        timeout=30,
    )
    assert paid.status_code == 302
    back = urlsplit(paid.headers["Location"])
    assert back.path == "/return/vnpay"
    assert parse_qs(back.query)["vnp_ResponseCode"] == ["00"]

    final = requests.get(f"{base}/api/v1/orders/{order_id}", headers=auth, timeout=10).json()
    assert final["status"] == "paid"
    assert final["paid_amount"] == 58000
    assert final["attempts"][0]["status"] == "succeeded"

    # A restart keeps the same demo key (instance/demo-client.json) and the same data.
    saved = json.loads((cwd / "instance" / "demo-client.json").read_text())
    assert saved["api_key"] == api_key
