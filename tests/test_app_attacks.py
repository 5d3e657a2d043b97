"""Attacks on a running ``panda app`` server, on this machine's loopback, each as a web page, another
program or a careless client would make it; after each, a normal edit still gives the same image.

The server runs with short limits (requests within 1 s, 4 connections) so that the slow attacks
end in seconds; ``docs/app.md`` gives the defaults.
"""

from __future__ import annotations

import base64
import json
import math
import re
import resource
import select
import socket
import subprocess
import time

import pytest
from PIL import EpsImagePlugin, PngImagePlugin

from panda_lightning.app import Limits
from panda_lightning.app.guard import TOKEN_HEADER

from app_support import Served, pixels, post, serving
from test_decoding import EPS, OTHER_FORMATS, encoded, png_declaring

pytestmark = pytest.mark.slow

LIMITS = Limits(max_body=8 * 2**20, request_seconds=1.0, max_connections=4)
NORMAL = {"seed": 1, "part": 0, "appearance": 2, "alpha": 2.0}


@pytest.fixture(scope="module")
def served(editor):
    with serving(editor, limits=LIMITS) as server:
        yield server


@pytest.fixture(scope="module")
def reference(served) -> str:
    """The image of a normal edit, before any attack."""
    status, answer = post(served, "/api/edit", NORMAL)
    assert status == 200
    return answer["edited"]


@pytest.fixture(autouse=True)
def still_serving(served, reference):
    """After each attack, a normal edit still gives the same image."""
    yield
    status, answer = post(served, "/api/edit", NORMAL)
    assert status == 200 and answer["edited"] == reference


def request(served: Served, body: bytes = b"{}", method: str = "POST", path: str = "/api/info", **replaced: str | None) -> bytes:
    """An HTTP request as the page sends it, with headers ``replaced`` (``None`` leaves one out;
    ``Content_Type`` for ``Content-Type``)."""
    headers = {"Host": f"127.0.0.1:{served.port}", "Content-Type": "application/json", TOKEN_HEADER: served.token,
               "Content-Length": str(len(body))}
    headers.update({name.replace("_", "-"): value for name, value in replaced.items()})
    lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items() if value is not None)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(served: Served, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection; the answer's status, headers and body, read until the server closes."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=timeout) as connection:
        connection.sendall(data)
        return answer_on(connection)


def answer_on(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def error_of(body: bytes) -> str:
    message = json.loads(body)["error"]
    assert "\n" not in message
    return message


def png_data_url(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode()


# -- what is decoded ------------------------------------------------------------------------------


@pytest.mark.parametrize("format", OTHER_FORMATS)
def test_a_mask_of_another_format_than_png_is_refused(served, format):  # noqa: A002
    status, answer = post(served, "/api/edit", {**NORMAL, "part": None, "mask": png_data_url(encoded(format))})
    assert status == 400 and answer["error"] == "mask is not a PNG image."


def test_eps_sent_as_a_mask_never_reaches_ghostscript(served, monkeypatch):
    reached = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: reached.append("EPS decoder"))
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: reached.append(args))
    status, answer = post(served, "/api/gallery", {"seed": 0, "mask": png_data_url(EPS)})
    assert status == 400 and answer["error"] == "mask is not a PNG image." and reached == []


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("width, height, rows", [(100_000, 100_000, 0), (12_800, 12_800, 12_800), (65, 64, 64)])
def test_a_mask_of_another_size_than_the_image_is_refused_before_it_is_decoded(served, monkeypatch, width, height, rows):
    decoded = []
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: decoded.append(self.size))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    status, answer = post(served, "/api/edit", {**NORMAL, "part": None, "mask": png_data_url(png_declaring(width, height, rows))})
    assert status == 400 and answer["error"].endswith("pixels; it must be 64 x 64.")
    assert decoded == [] and time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100 * 1024  # KiB: no 160 MB image decoded


# -- who may ask ------------------------------------------------------------------------------------


def test_a_foreign_host_is_refused_dns_rebinding(served):
    for host in ["attacker.com", f"attacker.com:{served.port}", f"127.0.0.1:{served.port + 1}", f"localhost.attacker.com:{served.port}"]:
        status, _, body = exchange(served, request(served, Host=host))
        assert status == 403 and "not this server's address" in error_of(body)
        # The page with its token is not given to a foreign name either.
        status, _, body = exchange(served, request(served, b"", "GET", f"/?token={served.token}", Host=host, Content_Length=None))
        assert status == 403 and served.token.encode() not in body
    assert exchange(served, request(served, Host=None))[0] == 400
    assert exchange(served, request(served, Host=f"localhost:{served.port}"))[0] == 200


def test_a_page_of_another_origin_is_refused(served):
    for header in [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec_Fetch_Site": "cross-site"}]:
        status, _, body = exchange(served, request(served, **header))
        assert status == 403 and "another" in error_of(body)
    assert exchange(served, request(served, Origin=f"http://127.0.0.1:{served.port}", Sec_Fetch_Site="same-origin"))[0] == 200


def test_a_body_that_is_not_declared_json_is_refused_as_a_no_cors_fetch_sends_it(served):
    body = json.dumps(NORMAL).encode()
    for kind in ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]:
        status, _, answer = exchange(served, request(served, body, path="/api/edit", Content_Type=kind))
        assert status == 415 and "must be JSON" in error_of(answer)


def test_the_api_takes_only_this_launchs_token(served):
    for token in [None, "", served.token[:-1], served.token + "x"]:
        status, _, body = exchange(served, request(served, **{TOKEN_HEADER: token}))
        assert status == 403 and "token" in error_of(body)
    # The page: refused without the token, given with it (and a cookie for reloads), then by the cookie.
    status, _, body = exchange(served, request(served, b"", "GET", "/", Content_Length=None))
    assert status == 403 and served.token.encode() not in body
    assert exchange(served, request(served, b"", "GET", "/?token=wrong", Content_Length=None))[0] == 403
    status, headers, page = exchange(served, request(served, b"", "GET", f"/?token={served.token}", Content_Length=None))
    assert status == 200 and f'<meta name="panda-token" content="{served.token}">'.encode() in page
    assert headers["Set-Cookie"] == f"panda-token-{served.port}={served.token}; Path=/; HttpOnly; SameSite=Strict"
    cookie = f"panda-token-{served.port}={served.token}"
    assert exchange(served, request(served, b"", "GET", "/", Content_Length=None, Cookie=cookie))[0] == 200
    assert exchange(served, request(served, b"", "GET", "/", Content_Length=None, Cookie=f"panda-token-1={served.token}"))[0] == 403


def test_no_answer_may_be_framed(served):
    answers = [
        exchange(served, request(served, b"", "GET", f"/?token={served.token}", Content_Length=None)),
        exchange(served, request(served, b"", "GET", "/editor.js", Content_Length=None)),
        exchange(served, request(served)),
        exchange(served, request(served, Host="attacker.com")),
        exchange(served, request(served, path="/api/nothing")),
        exchange(served, b"BREW / HTTP/1.1\r\n\r\n"),
    ]
    assert [status for status, _, _ in answers] == [200, 200, 200, 403, 404, 501]
    for _, headers, _ in answers[:-1]:
        assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]


# -- how much -------------------------------------------------------------------------------------------


def test_a_missing_negative_or_non_numeric_length_is_refused_before_the_body_is_read(served):
    cases = {"-1": 400, "abc": 400, "0x10": 400, None: 411}
    for length, expected in cases.items():
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as connection:
            started = time.monotonic()
            connection.sendall(request(served, b"", Content_Length=length) + b'{"seed": 0')  # and the body never ends
            status, _, body = answer_on(connection)
        assert status == expected and time.monotonic() - started < 0.5, length  # answered at once, not at the 1 s limit
    chunked = request(served, b"", Content_Length=None, Transfer_Encoding="chunked") + b"2\r\n{}\r\n0\r\n\r\n"
    assert exchange(served, chunked)[0] == 411
    twice = request(served).replace(b"Content-Length: 2\r\n", b"Content-Length: 2\r\nContent-Length: 99999\r\n")
    assert exchange(served, twice)[0] == 400


def test_a_body_over_the_limit_is_refused_unread(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as connection:
        connection.sendall(request(served, b"", Content_Length=str(64 * 2**20)))  # 64 MiB announced, none sent
        status, _, body = answer_on(connection)
    assert status == 413 and error_of(body) == f"the request has {64 * 2**20} bytes; at most {LIMITS.max_body} are read."
    # A client that sends its body all the same reads the answer, not a reset connection.
    too_large = json.dumps({**NORMAL, "parts": "x" * (16 * 2**20)}).encode()
    status, _, body = exchange(served, request(served, too_large, path="/api/edit"))
    assert status == 413 and "at most" in error_of(body)


def closed_after(connection: socket.socket, pieces: list[bytes], every: float) -> float:
    """Send ``pieces`` one at a time, ``every`` seconds apart, until the server closes the
    connection: the seconds that took (infinite when it never did)."""
    started = time.monotonic()
    for piece in pieces:
        if select.select([connection], [], [], every)[0]:  # the server closed it (or answered)
            return time.monotonic() - started
        try:
            connection.sendall(piece)
        except OSError:
            return time.monotonic() - started
    return math.inf


def test_slow_and_idle_connections_are_closed_at_the_limit(served):
    whole = request(served, json.dumps(NORMAL).encode(), path="/api/edit")
    head, body = whole.split(b"\r\n\r\n", 1)
    trickles = {
        "idle": [b""] * 40,
        "headers a byte at a time": [bytes([byte]) for byte in head],
        "body a byte at a time": [head + b"\r\n\r\n", *(bytes([byte]) for byte in body)],
    }
    for name, pieces in trickles.items():
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as connection:
            seconds = closed_after(connection, pieces, every=0.1)
        assert LIMITS.request_seconds - 0.2 < seconds < LIMITS.request_seconds + 1.0, (name, seconds)


def test_connections_past_the_cap_are_answered_503_at_once(served):
    idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.2)  # (all taken up by the server)
        started = time.monotonic()
        status, _, body = exchange(served, request(served))
        assert status == 503 and "as many connections" in error_of(body) and time.monotonic() - started < 0.5
    finally:
        for connection in idle:
            connection.close()
    time.sleep(0.2)
    assert exchange(served, request(served))[0] == 200


def test_errors_never_echo_the_request(served):
    marker = "x" * (7 * 2**20)  # 7 MiB, under the body limit
    bodies = [{**NORMAL, "parts": marker}, {**NORMAL, "seed": marker}, {**NORMAL, marker: 1}, {**NORMAL, "mask": marker}]
    for body in bodies:
        status, _, answer = exchange(served, request(served, json.dumps(body).encode(), path="/api/edit"))
        assert status == 400 and len(answer) < 500 and "x" * 100 not in error_of(answer)
    long_path = "/api/" + "x" * 60000
    for data in [request(served, path=long_path), b"GARBAGE /" + b"x" * 60000 + b" HTTP/1.1\r\n\r\n",
                 b"POST /api/info HTTP/9." + b"x" * 60000 + b"\r\n\r\n", request(served, Host="x" * 60000)]:
        status, _, answer = exchange(served, data)
        assert status in (400, 403, 404, 501) and len(answer) < 500 and b"x" * 100 not in answer


@pytest.mark.parametrize(
    "body, message",
    [
        (b"[" * 100_000 + b"]" * 100_000, r"the request's JSON is nested too deep\."),
        (b'{"seed": 1, "part": 0, "appearance": 2, "alpha": 1' + b"0" * 400 + b"}",
         r"the request holds an integer of 401 digits; at most 20 are read\."),
        (b'{"seed": 1, "part": 0, "appearance": 2, "alpha": 1e400}', r"alpha=inf must be a finite number"),
        (b'{"seed": 1, "part": 0, "appearance": 2, "alpha": NaN}', r"the request holds NaN, which is not a number JSON knows\."),
        (b'{"seed": 1, "part": 0, "appearance": 2, "alpha": -Infinity}', r"the request holds -Infinity"),
        (b'{"seed": "\xff"}', r"the request is not UTF-8 text\."),
        (b'{"seed": 1, "part": 0', r"the request is not JSON: Expecting ',' delimiter at line 1 column 22\."),
    ],
    ids=["deep", "huge integer", "overflow", "NaN", "infinity", "not UTF-8", "cut short"],
)
def test_malformed_json_is_a_bad_request_in_one_line(served, body, message):
    status, _, answer = exchange(served, request(served, body, path="/api/edit"))
    assert status == 400 and re.match(message, error_of(answer))


def test_a_request_as_these_tests_make_it_is_answered(served):
    """(the attacks above change one thing each of a request that is otherwise served)"""
    status, headers, body = exchange(served, request(served, json.dumps(NORMAL).encode(), path="/api/edit"))
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert pixels(json.loads(body)["edited"]).shape == (64, 64, 3)


def test_a_photo_may_be_larger_than_other_requests_but_one_is_received_at_a_time(served):
    # 12 MiB announced: more than any other request may send, within a photo's limit.
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as first:
        first.sendall(request(served, b"", path="/api/photo", Content_Length=str(12 * 2**20)) + b"{")
        time.sleep(0.2)  # (the server reads its body)
        status, _, body = exchange(served, request(served, b"{}", path="/api/photo"))
        assert status == 503 and "another photo is being received" in error_of(body)
        status, _, body = exchange(served, request(served, b"", Content_Length=str(12 * 2**20)))
        assert status == 413  # any other request: 8 MiB
    # The first gave up (its connection closed): the next photo is received, and answered on its merits.
    time.sleep(0.2)
    status, _, body = exchange(served, request(served, json.dumps({"name": "x.png", "image": "data:image/gif;base64,AA"}).encode(), path="/api/photo"))
    assert status == 400 and "PNG or JPEG data: URL" in error_of(body)
