"""Who may ask ``panda app`` for anything, and how much: the checks every request passes before
its body is read, and the limits that bound what one connection can hold.

The server listens on this machine only by default, but every web page open in a browser on this
machine can send it requests. So, as Jupyter's server does:

- ``Host`` must name an address the server serves: a page of another site whose name an attacker
  re-points at 127.0.0.1 (DNS rebinding) sends its own name there;
- ``Origin``, which browsers send with every POST, must be the server's own, and a request that a
  browser marks ``Sec-Fetch-Site: cross-site`` is refused;
- the API takes ``application/json`` only: another site can send a form or ``text/plain``
  without asking, but JSON (and the token's header) only after a pre-flight this server never grants;
- every API request carries the per-launch token in a header; the page gets the token from the
  address ``panda app`` prints (then from a cookie for this port, for reloads).

Each check raises :class:`Refused` with the status to answer and a message that repeats nothing
of the request.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import math
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie

from panda_lightning.functional.validation import check_float, check_int

TOKEN_HEADER = "X-PandA-Token"


@dataclass(frozen=True)
class Limits:
    """What one request and all connections together may take.

    Args:
        max_body: bytes of a request's body (a 1024 px mask, as the page sends it, is at most 5.6 MiB).
        max_photo_body: bytes of a photo's body, the photo as a ``data:`` URL (base64: 4/3 of its file).
        request_seconds: a request must arrive whole (its line, headers and body) within this
            many seconds of the connection's being taken up, however slowly its bytes trickle;
            it is also the most an answer may wait on a client that does not read it.
        max_connections: connections served at once; one more is answered 503 and closed.
    """

    max_body: int = 8 * 2**20
    max_photo_body: int = 72 * 2**20
    request_seconds: float = 20.0
    max_connections: int = 32

    def __post_init__(self) -> None:
        check_int("max_body", self.max_body, low=1)
        check_int("max_photo_body", self.max_photo_body, low=1)
        check_float("request_seconds", self.request_seconds, low=0, low_inclusive=False)
        check_int("max_connections", self.max_connections, low=1)


class Refused(Exception):
    """A request refused before it is served: the status to answer and why, in one line."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine alone."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _host_and_port(value: str) -> tuple[str, int | None]:
    """``Host``'s name or address (IPv6 without its brackets) and port (``None`` when absent)."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?", value.strip())
    if match is None:
        raise Refused(HTTPStatus.BAD_REQUEST, "the request's Host header is not a host and port.")
    name, port = match.groups()
    return name.strip("[]").lower(), None if port is None else int(port)


@dataclass
class Guard:
    """The checks of requests to a server bound at ``host:port``, with the launch's ``token``."""

    host: str
    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    limits: Limits = field(default_factory=Limits)

    @property
    def cookie_name(self) -> str:
        # Cookies do not tell ports apart: two apps on two ports keep their own.
        return f"panda-token-{self.port}"

    def check_host(self, headers: Message) -> str:
        """``Host`` when it names this server: the address it serves (``localhost`` and the
        loopback addresses for a server of this machine alone; any address for one bound to all
        of them, as an address cannot be re-pointed as a name can) at its port."""
        value = _one(headers, "Host")
        if not value:
            raise Refused(HTTPStatus.BAD_REQUEST, "the request has no Host header.")
        name, port = _host_and_port(value)
        served = self.host.strip("[]").lower()
        if is_loopback(served):
            allowed = is_loopback(name)
        elif _is_unspecified(served):
            allowed = name == "localhost" or _is_address(name)
        else:
            allowed = name == served
        if not allowed or (port or 80) != self.port:
            raise Refused(HTTPStatus.FORBIDDEN, f"the request's Host is not this server's address (it serves {self.host} at port {self.port}).")
        return value

    def check_origin(self, headers: Message, host: str) -> None:
        """The request comes from this server's own page (or from no page: a script or a tool)."""
        if headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            raise Refused(HTTPStatus.FORBIDDEN, "a page of another site cannot use this server.")
        origin = headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            raise Refused(HTTPStatus.FORBIDDEN, "a page of another origin cannot use this server.")

    def check_token(self, headers: Message) -> None:
        """The API request carries this launch's token."""
        given = headers.get(TOKEN_HEADER)
        if given is None or not self.is_token(given):
            raise Refused(HTTPStatus.FORBIDDEN, f"the request lacks this launch's token ({TOKEN_HEADER}): reload the page from the address panda app printed.")

    def is_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("latin-1", "replace"), self.token.encode())

    def token_from_cookie(self, headers: Message) -> str | None:
        """The token of a page's cookie for this port, when it is this launch's."""
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = cookies.get(self.cookie_name)
        return morsel.value if morsel is not None and self.is_token(morsel.value) else None

    def set_cookie(self) -> str:
        """The ``Set-Cookie`` value that lets a reload of the page find the token again."""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"

    @staticmethod
    def check_json(headers: Message) -> None:
        """The body is declared JSON, which a page of another site cannot send without a pre-flight."""
        media_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the request's body must be JSON (Content-Type: application/json).")

    def body_length(self, headers: Message, limit: int | None = None) -> int:
        """The body's length as declared, checked against ``limit`` (``max_body`` by default)
        before a byte of it is read."""
        limit = self.limits.max_body if limit is None else limit
        if "Transfer-Encoding" in headers:
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "the request must give its body's length (Content-Length), not a Transfer-Encoding.")
        declared = _one(headers, "Content-Length")
        if declared is None:
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "the request must give its body's length (Content-Length).")
        if not re.fullmatch(r"[0-9]{1,15}", declared.strip()):
            raise Refused(HTTPStatus.BAD_REQUEST, "the request's Content-Length is not a whole number of bytes.")
        length = int(declared)
        if length > limit:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the request has {length} bytes; at most {limit} are read.")
        return length


def _one(headers: Message, name: str) -> str | None:
    """The header ``name``, refused when it is given twice (two lengths, two hosts: which one a
    proxy on the way reads is anyone's guess)."""
    values = headers.get_all(name) or []
    if len(values) > 1:
        raise Refused(HTTPStatus.BAD_REQUEST, f"the request gives {name} {len(values)} times.")
    return values[0] if values else None


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class DeadlineReader(io.RawIOBase):
    """A socket's reads that end at :attr:`deadline`, however slowly its bytes come: a socket's own
    timeout bounds each read alone, and a client sending a byte a second would hold a thread forever."""

    def __init__(self, connection: socket.socket):
        super().__init__()
        self.connection = connection
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.connection.settimeout(remaining)
        return self.connection.recv_into(buffer)
