"""The web side of ``panda app``: the page and the JSON API of :class:`~panda_lightning.app.api.EditorAPI`,
on the standard library's threading HTTP server, to this machine alone by default.

Every request passes the checks of :class:`~panda_lightning.app.guard.Guard` (who is asking,
what they send, how much) before its body is read. The page (``static/``) loads nothing from
elsewhere, and its Content-Security-Policy forbids it to and forbids framing it. Each request
carries the whole state of its tab, so tabs are independent. A request whose values are bad is
answered ``400 {"error": ...}`` with the message the page shows; a refused one with its status
(403, 411, 413, 415) and one line; a failure of the server's own ``500`` with one line, and the
server goes on serving.
"""

from __future__ import annotations

import html
import io
import json
import logging
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from panda_lightning.app.api import EditorAPI, read_request
from panda_lightning.app.editor import Editor
from panda_lightning.app.guard import DeadlineReader, Guard, Limits, Refused

log = logging.getLogger(__name__)

PHOTO_ROUTE = "/api/photo"  # the one request that may carry a photo, and so a larger body
STATIC = {"/editor.js": ("editor.js", "text/javascript"), "/editor.css": ("editor.css", "text/css")}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
TOKEN_PLACEHOLDER = '<meta name="panda-token" content="">'
NO_TOKEN_PAGE = """<!doctype html><meta charset="utf-8"><title>PandA editor</title>
<p>Open the address that <code>panda app</code> printed when it started, with its token
(<code>http://{address}/?token=...</code>).</p>"""


def _page(token: str) -> bytes:
    page = resources.files("panda_lightning.app").joinpath("static", "index.html").read_text()
    return page.replace(TOKEN_PLACEHOLDER, f'<meta name="panda-token" content="{html.escape(token)}">').encode()


class _Handler(BaseHTTPRequestHandler):
    api: EditorAPI  # these two are set on the subclass that make_server() makes
    guard: Guard
    server_version = "panda-app"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self._reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        # The whole request (line, headers, body) must arrive within the limit.
        self._reader.deadline = time.monotonic() + self.guard.limits.request_seconds
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        try:
            self.guard.check_origin(self.headers, self.guard.check_host(self.headers))
            address = urlsplit(self.path)
            if address.path in STATIC:
                name, kind = STATIC[address.path]
                self._send(HTTPStatus.OK, resources.files("panda_lightning.app").joinpath("static", name).read_bytes(), f"{kind}; charset=utf-8")
            elif address.path == "/":
                self._index(parse_qs(address.query).get("token", [None])[0])
            else:
                raise Refused(HTTPStatus.NOT_FOUND, "not found")
        except Refused as refusal:
            self._json(refusal.status, {"error": str(refusal)})

    def _index(self, token: str | None) -> None:
        if token is not None and self.guard.is_token(token):
            self._send(HTTPStatus.OK, _page(token), "text/html; charset=utf-8", {"Set-Cookie": self.guard.set_cookie()})
        elif (token := self.guard.token_from_cookie(self.headers)) is not None:
            self._send(HTTPStatus.OK, _page(token), "text/html; charset=utf-8")
        else:
            address = html.escape(f"{self.guard.host}:{self.guard.port}")
            self._send(HTTPStatus.FORBIDDEN, NO_TOKEN_PAGE.format(address=address).encode(), "text/html; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        started = time.perf_counter()
        try:
            guard = self.guard
            guard.check_origin(self.headers, guard.check_host(self.headers))
            route = self.api.routes.get(self.path)
            if route is None:
                raise Refused(HTTPStatus.NOT_FOUND, f"no such request; they are {', '.join(self.api.routes)}.")
            guard.check_token(self.headers)
            guard.check_json(self.headers)
            photo = self.path == PHOTO_ROUTE
            length = guard.body_length(self.headers, guard.limits.max_photo_body if photo else None)
            # One photo's body in memory at a time: it may be 72 MiB, where any other is 8.
            if photo and not self.server.photo_body.acquire(blocking=False):
                raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "another photo is being received: try again when it is in.")
            try:
                body = self._body(length)
                if body is None:
                    return
                answer = route(read_request(body))
            finally:
                if photo:
                    self.server.photo_body.release()
        except Refused as refusal:
            self._json(refusal.status, {"error": str(refusal)})
            self._discard_unread()
            return
        except ValueError as error:  # a bad value from the page, said by the checks
            self._json(HTTPStatus.BAD_REQUEST, {"error": _one_line(error)})
            return
        except Exception as error:  # the page says it and the server goes on: one request failed, not the app
            log.exception("request %s failed", self.path[:100])
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": _one_line(error, with_type=True)})
            return
        self._json(HTTPStatus.OK, {**answer, "milliseconds": round(1000 * (time.perf_counter() - started), 1)})

    def _body(self, length: int) -> bytes | None:
        """The body, or ``None`` when the client went away or took too long to send it."""
        try:
            body = self.rfile.read(length)
        except OSError:
            body = b""
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def _discard_unread(self) -> None:
        # A client refused while it still sends its body would see a reset connection, not the
        # answer: drop what it sends until it stops, within the time a request may take.
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while self.rfile.read1(2**16):
                pass
        except OSError:  # (the time is up, or the client went away)
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (a malformed request line, an unknown method) repeat the request; these do not.
        self.close_connection = True
        self.request_version = "HTTP/1.0"  # (http.server answers a line it could not read as HTTP/0.9: no status)
        self._json(HTTPStatus(code), {"error": f"{HTTPStatus(code).phrase}."})

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        # A client that does not read its answer holds the thread no longer than a request may take to arrive.
        self.connection.settimeout(self.guard.limits.request_seconds)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)


def _one_line(error: Exception, with_type: bool = False, limit: int = 1000) -> str:
    text = f"{type(error).__name__}: {error}" if with_type else str(error)
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


class EditorServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``limits.max_connections`` connections at once:
    one more is answered ``503`` at once and closed, rather than given a thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], limits: Limits):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self.photo_body = threading.Lock()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            body = json.dumps({"error": "the server is serving as many connections as it takes; try again."}).encode()
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: socket.socket, client_address: Any) -> None:
        # A client that goes away mid-answer is no error of the server's: one line, not a traceback.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("connection from %s ended: %s", client_address, error)
        else:
            super().handle_error(request, client_address)


def make_server(
    editor: Editor, host: str = "127.0.0.1", port: int = 7860, token: str | None = None, limits: Limits | None = None
) -> EditorServer:
    """An HTTP server of the page and the API at ``host:port`` (``port=0``: a free one), not yet
    serving; ``server.guard.token`` is the launch's token (random unless given), and
    ``server.url`` the address to open, with it."""
    limits = limits or Limits()
    server = EditorServer((host, port), _Handler, limits)
    guard = Guard(host, server.server_address[1], limits=limits, **({} if token is None else {"token": token}))
    server.RequestHandlerClass = type("EditorHandler", (_Handler,), {"api": EditorAPI(editor), "guard": guard})
    server.guard = guard
    shown = f"[{host}]" if ":" in host else host
    server.url = f"http://{shown}:{guard.port}/?token={guard.token}"
    return server
