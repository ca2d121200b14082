"""Security: TLS to OpenSearch is verified by default, requests go only to the configured
upstream, credentials and query text stay out of the logs."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crossrank.config import UpstreamSettings
from crossrank.server import build_app

from proxy_fixtures import ServedProxy, proxy_settings
from relay import Relay

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_relay(opensearch_url: str, certificate: tuple[Path, Path]) -> Iterator[Relay]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    relay = Relay(opensearch_url, tls=context).start()
    yield relay
    relay.stop()


def test_tls_upstream_is_verified_by_default(tls_relay: Relay, certificate: tuple[Path, Path],
                                             tiny_cross_encoder_dir: Path) -> None:
    untrusted = proxy_settings(tls_relay.url, tiny_cross_encoder_dir, policy_refresh_s=60)
    assert untrusted.upstream.verify_certs
    proxy = ServedProxy(build_app(untrusted), untrusted.port).start()
    try:
        refused = httpx.get(f"{proxy.url}/", timeout=30)
        assert refused.status_code == 502
        assert "certificate" in refused.json()["error"]["reason"].lower()
    finally:
        proxy.stop()

    trusted = proxy_settings(tls_relay.url, tiny_cross_encoder_dir, policy_refresh_s=60,
                             upstream=UpstreamSettings(url=tls_relay.url,
                                                       ca_certs=certificate[0]))
    proxy = ServedProxy(build_app(trusted), trusted.port).start()
    try:
        answer = httpx.get(f"{proxy.url}/", timeout=30)
        assert answer.status_code == 200 and answer.json()["version"]["number"]
    finally:
        proxy.stop()


def test_requests_go_only_to_the_configured_upstream(opensearch_url: str,
                                                     tiny_cross_encoder_dir: Path) -> None:
    """Whatever URL, Host or path the client names, the bytes go to the configured node."""
    elsewhere = socket.socket()
    elsewhere.bind(("127.0.0.1", 0))
    elsewhere.listen(8)
    elsewhere.settimeout(0.2)
    other = elsewhere.getsockname()[1]
    relay = Relay(opensearch_url).start()
    settings = proxy_settings(relay.url, tiny_cross_encoder_dir, policy_refresh_s=60)
    proxy = ServedProxy(build_app(settings), settings.port).start()
    try:
        for target in (f"http://127.0.0.1:{other}/_cluster/health", f"//127.0.0.1:{other}/",
                       "/../../_cluster/health", "/%2e%2e/_nodes"):
            with socket.create_connection(("127.0.0.1", proxy.port)) as client:
                client.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\n"
                               "Connection: close\r\n\r\n".encode())
                client.settimeout(30)
                reply = b""
                while chunk := client.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 "), (target, reply[:100])
        with pytest.raises(TimeoutError):  # nothing ever connected to the other port
            elsewhere.accept()
        assert b"HTTP/1.1" in bytes(relay.sent)
    finally:
        proxy.stop()
        relay.stop()
        elsewhere.close()


# OpenSearch 3.x answers 400 to an X-Request-Id that is not 32 hex digits (2.x takes any)
LOG_CHECK_ID = "10c0c4ecc0000000000000000000001a"


def test_credentials_and_query_text_are_not_logged(proxy_url: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    secret = "c2VjcmV0LXVzZXI6aHVudGVyMg=="
    with caplog.at_level(logging.DEBUG):
        reply = httpx.get(f"{proxy_url}/_cluster/health?local=true",
                          headers={"authorization": f"Basic {secret}",
                                   "x-request-id": LOG_CHECK_ID})
        unreachable = httpx.post(f"{proxy_url}/no-such-index/_search?q=private-term",
                                 headers={"authorization": f"Basic {secret}"},
                                 json={"query": {"match": {"t": "private-term"}}})
        deadline = time.monotonic() + 5
        while not any(LOG_CHECK_ID in r.getMessage() + str(getattr(r, "fields", ""))
                      for r in caplog.records):
            assert time.monotonic() < deadline, "the access log line never came"
            time.sleep(0.05)
    assert reply.status_code == 200 and unreachable.status_code == 404
    # the proxy's own loggers and its server's (the test's HTTP client logs its URLs itself)
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("crossrank", "uvicorn")]
    assert any(r.name == "crossrank.access" for r in ours)
    logged = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in ours)
    assert secret not in logged and "hunter2" not in logged
    assert "private-term" not in logged
