"""``MotoServer``: moto's threaded server on a free loopback port, fit for asyncio debug mode.

moto's in-process ``mock_aws`` does not work with aiobotocore; its server does. One catch:
werkzeug's request handler writes a ``Server: Werkzeug/...`` header and moto's answers carry
``server: amazon.com`` too. aiohttp's response parser tolerates the pair in lax mode, but in
debug mode (``PYTHONASYNCIODEBUG`` set or ``python -X dev``, read when aiohttp is imported) it
is strict and refuses every answer with "Duplicate 'Server' header found". `MotoServer` wraps
moto's WSGI application so its answers leave the ``Server`` header to werkzeug alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigurationError

__all__ = ["MotoServer", "SingleServerHeader"]

_StartResponse = Callable[..., Any]
_WSGIApp = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


class SingleServerHeader:
    """A WSGI middleware that drops the application's ``Server`` headers.

    The HTTP server in front (werkzeug) writes its own, so each answer has exactly one.
    """

    def __init__(self, app: _WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            kept = [(name, value) for name, value in headers if name.lower() != "server"]
            return start_response(status, kept, *exc_info)

        return self.app(environ, start)


class MotoServer:
    """moto's threaded server on a free loopback port.

    moto's in-process ``mock_aws`` does not work with aiobotocore; its server does. Its answers
    carry one ``Server`` header, so aiohttp's strict parser (asyncio debug mode) accepts them.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        try:
            _single_server_header(self._server)
        except BaseException:
            self._server.stop()
            raise
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Forget every resource moto holds (``POST /moto-api/reset``)."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self._server.stop()


def _single_server_header(threaded: Any) -> None:
    """Wrap the WSGI app of moto's running werkzeug server (nobody knows its port yet)."""
    wsgi_server: Any = getattr(threaded, "_server", None)
    app = getattr(wsgi_server, "app", None)
    if app is None:
        if _aiohttp_is_strict():
            raise ConfigurationError(
                "MotoServer cannot run in asyncio debug mode with this moto version: its answers "
                "carry the 'Server' header twice (werkzeug's and moto's) and aiohttp's strict "
                "parser, on under PYTHONASYNCIODEBUG or 'python -X dev', refuses them; unset "
                "PYTHONASYNCIODEBUG (use asyncio.run(..., debug=True) instead)"
            )
        return
    if not isinstance(app, SingleServerHeader):
        wsgi_server.app = SingleServerHeader(app)


def _aiohttp_is_strict() -> bool:
    try:
        from aiohttp import helpers
    except ImportError:  # pragma: no cover - aiohttp comes with aiobotocore
        return False
    return bool(getattr(helpers, "DEBUG", False))
