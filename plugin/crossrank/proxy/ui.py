"""GET /_crossrank/ui/: the compare and evaluation page, static files shipped in the package.

The page is read-only: it lists the policies (``GET /_crossrank/policies``) and searches through
the proxy's own ``_search`` with the browser's credentials, both arms side by side. Nothing here
touches OpenSearch; only the files in ``crossrank/ui`` are served, by name.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from crossrank.proxy.errors import MethodNotAllowed, NotFound
from crossrank.proxy.http import Incoming, Send, respond

UI_PREFIX = "/ui"
_TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
          ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml"}
# Everything the page loads comes from the proxy itself; its searches go to the same origin.
_SECURITY = [(b"content-security-policy",
              b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
              b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
             (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
             (b"cache-control", b"no-cache")]


@cache
def ui_files() -> dict[str, bytes]:
    """File name -> bytes, for every file of the page (read once)."""
    root = resources.files("crossrank") / "ui"
    return {item.name: item.read_bytes() for item in root.iterdir()
            if item.is_file() and "." + item.name.rsplit(".", 1)[-1] in _TYPES}


async def handle_ui(request: Incoming, path: str, send: Send) -> None:
    """``path`` is what follows ``/_crossrank/ui``: "", "/" or "/{file}"."""
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{request.method} is not allowed on the page; it only reads")
    if path == "":
        # relative: still right when a path prefix is put in front of the proxy
        await respond(send, 301, b"", [(b"location", b"ui/")])
        return
    name = path.removeprefix("/") or "index.html"
    body = ui_files().get(name)
    if body is None:
        raise NotFound(f"no file [{name}] in the page")
    kind = _TYPES["." + name.rsplit(".", 1)[-1]]
    await respond(send, 200, body, [(b"content-type", kind), *_SECURITY])
