"""A TCP relay on loopback between the proxy and the real OpenSearch node, for tests.

It records what the proxy sent upstream (to check headers reach OpenSearch as the client sent
them), can delay the node's answers (to test timeouts) and can speak TLS to the proxy (to test
certificate checks). It forwards real bytes to a real
node; it never answers by itself.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from urllib.parse import urlparse


class Relay:
    def __init__(self, target_url: str, *, delay_s: float = 0.0,
                 tls: ssl.SSLContext | None = None) -> None:
        parsed = urlparse(target_url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.delay_s = delay_s
        self.tls = tls  # serve TLS to the proxy (the node behind stays plain HTTP)
        self.sent = bytearray()  # everything the proxy sent towards OpenSearch
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="relay")

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("relay did not start")
        return self

    def wait_sent(self, needle: bytes, count: int = 1, timeout_s: float = 10.0) -> None:
        """Block until ``needle`` has gone towards OpenSearch ``count`` times (a request line,
        say): the requests are then in flight, whatever the machine's speed."""
        deadline = time.monotonic() + timeout_s
        while self.sent.count(needle) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} sent {self.sent.count(needle)} times, "
                                   f"not {count}, within {timeout_s} s")
            time.sleep(0.01)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in self._writers:
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       record: bool, delay: float) -> None:
            try:
                while chunk := await src.read(65536):
                    if record:
                        self.sent.extend(chunk)
                    if delay:
                        await asyncio.sleep(delay)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True, 0.0),
                             pipe(up_reader, writer, False, self.delay_s))
