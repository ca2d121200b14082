"""A real crossrank proxy for the test session: uvicorn serving CrossrankApp on a loopback port,
in front of the session's real OpenSearch node, scoring with a real exported ONNX model."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from crossrank.config import AdminSettings, Settings, UpstreamSettings
from crossrank.server import build_app

ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedProxy:
    """uvicorn in a background thread with its own event loop; stop() shuts it down cleanly."""

    def __init__(self, app: object, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="on", loop="asyncio", http="httptools",
                                server_header=False, date_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"proxy-{port}")

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> ServedProxy:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the crossrank proxy did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def proxy_settings(upstream_url: str, model_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "port": free_port(),
        "upstream": UpstreamSettings(url=upstream_url, read_timeout_s=30),
        "models": {"default": model_dir},
        "admin": AdminSettings(token=ADMIN_TOKEN),
        "policy_index": ".crossrank-policies-test",
        "policy_refresh_s": 0.5,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def admin_token() -> str:
    return ADMIN_TOKEN


@pytest.fixture(scope="session")
def proxy_settings_default(opensearch_url: str, tiny_cross_encoder_dir: Path) -> Settings:
    return proxy_settings(opensearch_url, tiny_cross_encoder_dir)


@pytest.fixture(scope="session")
def proxy(proxy_settings_default: Settings) -> Iterator[ServedProxy]:
    served = ServedProxy(build_app(proxy_settings_default), proxy_settings_default.port).start()
    yield served
    served.stop()


@pytest.fixture(scope="session")
def proxy_url(proxy: ServedProxy) -> str:
    return proxy.url
