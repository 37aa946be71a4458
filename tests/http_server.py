"""A local static HTTP server for tests (a helper module, not a test).

    with serve_folder(tmp_path / "mirror") as url:   # e.g. "http://127.0.0.1:40213"
        ... fetch f"{url}/ISIC-2017_Training_Data.zip" ...

Binds 127.0.0.1 on a free port (port 0), serves one folder read-only from a
daemon thread and records every request path in ``served`` (so a test can
check that files really went over http). Nothing outside this machine can
reach it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves ``directory``; logs request paths to the server instead of stderr."""

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.served.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


class FolderServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` with the list of paths it was asked for."""

    daemon_threads = True
    served: list[str]
    url: str


@contextmanager
def serve_folder(root: str | Path) -> Iterator[FolderServer]:
    """Serve ``root`` over http on 127.0.0.1 (a free port) for the duration of the block.

    Yields the server; ``server.url`` is its base URL (no trailing slash) and
    ``server.served`` the request paths so far.
    """
    handler = partial(_QuietHandler, directory=str(Path(root).resolve()))
    server = FolderServer(("127.0.0.1", 0), handler)
    server.served = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="serve_folder", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
