"""Who may ask ``panda app``: the checks of :class:`~panda_lightning.app.guard.Guard` on headers, for
each address the server may be bound to (``test_app_attacks.py`` attacks a running server)."""

from __future__ import annotations

import email.message
import re

import pytest

from panda_lightning.app.guard import TOKEN_HEADER, Guard, Limits, Refused


def headers(**values: str | list[str]) -> email.message.Message:
    message = email.message.Message()
    for name, value in values.items():
        for each in value if isinstance(value, list) else [value]:
            message[name.replace("_", "-")] = each
    return message


@pytest.mark.parametrize(
    "bound, allowed, refused",
    [
        ("127.0.0.1", ["127.0.0.1:7860", "localhost:7860", "LOCALHOST:7860", "[::1]:7860"],
         ["attacker.com:7860", "127.0.0.1:7861", "127.0.0.1", "192.168.1.5:7860", "localhost.attacker.com:7860"]),
        ("::1", ["[::1]:7860", "localhost:7860"], ["attacker.com:7860"]),
        ("0.0.0.0", ["192.168.1.5:7860", "127.0.0.1:7860", "localhost:7860", "[fe80::1]:7860"], ["attacker.com:7860", "mybox:7860"]),
        ("mybox.lan", ["mybox.lan:7860", "MyBox.lan:7860"], ["attacker.com:7860", "127.0.0.1:7860", "mybox.lan:80"]),
    ],
)
def test_host_must_name_an_address_the_server_serves(bound, allowed, refused):
    guard = Guard(bound, 7860)
    for host in allowed:
        assert guard.check_host(headers(Host=host)) == host
    for host in refused:
        with pytest.raises(Refused, match="not this server's address") as refusal:
            guard.check_host(headers(Host=host))
        assert refusal.value.status == 403 and "attacker" not in str(refusal.value)  # (nothing of the request repeated)


@pytest.mark.parametrize("given", [{}, {"Host": ""}, {"Host": ["127.0.0.1:7860", "attacker.com:7860"]}, {"Host": "a b:c"}])
def test_a_missing_twice_given_or_malformed_host_is_a_bad_request(given):
    with pytest.raises(Refused) as refusal:
        Guard("127.0.0.1", 7860).check_host(headers(**given))
    assert refusal.value.status == 400


def test_origin_must_be_the_servers_own():
    guard, host = Guard("127.0.0.1", 7860), "127.0.0.1:7860"
    guard.check_origin(headers(Origin="http://127.0.0.1:7860"), host)
    guard.check_origin(headers(), host)  # (a script or a tool sends none)
    guard.check_origin(headers(Sec_Fetch_Site="same-origin"), host)
    for bad in [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:7861"},
                {"Origin": "https://127.0.0.1:7860"}, {"Sec_Fetch_Site": "cross-site"}]:
        with pytest.raises(Refused, match="another (site|origin)") as refusal:
            guard.check_origin(headers(**bad), host)
        assert refusal.value.status == 403


def test_the_token_is_compared_whole_from_the_header_or_the_pages_cookie():
    guard = Guard("127.0.0.1", 7860, token="s3cret-token")
    guard.check_token(headers(**{TOKEN_HEADER: "s3cret-token"}))
    for bad in [{}, {TOKEN_HEADER: ""}, {TOKEN_HEADER: "s3cret"}, {TOKEN_HEADER: "s3cret-token2"}, {TOKEN_HEADER: "\u00e9"}]:
        with pytest.raises(Refused, match="lacks this launch's token") as refusal:
            guard.check_token(headers(**bad))
        assert refusal.value.status == 403
    assert guard.token_from_cookie(headers(Cookie="panda-token-7860=s3cret-token; other=1")) == "s3cret-token"
    assert guard.token_from_cookie(headers(Cookie="panda-token-7861=s3cret-token")) is None  # another port's app
    assert guard.token_from_cookie(headers(Cookie="panda-token-7860=wrong")) is None
    assert guard.token_from_cookie(headers(Cookie='bad"cookie')) is None
    assert re.fullmatch(r"panda-token-7860=s3cret-token; Path=/; HttpOnly; SameSite=Strict", guard.set_cookie())
    assert Guard("127.0.0.1", 7860).token != Guard("127.0.0.1", 7860).token  # one per launch


@pytest.mark.parametrize(
    "kind, allowed",
    [("application/json", True), ("application/json; charset=utf-8", True), ("Application/JSON", True),
     ("text/plain", False), ("application/x-www-form-urlencoded", False), ("multipart/form-data; boundary=x", False), (None, False)],
)
def test_the_api_takes_json_alone(kind, allowed):
    given = headers() if kind is None else headers(Content_Type=kind)
    if allowed:
        Guard.check_json(given)
    else:
        with pytest.raises(Refused, match="must be JSON") as refusal:
            Guard.check_json(given)
        assert refusal.value.status == 415


@pytest.mark.parametrize(
    "given, status",
    [({}, 411), ({"Content-Length": "-1"}, 400), ({"Content-Length": "abc"}, 400), ({"Content-Length": "1e3"}, 400),
     ({"Content-Length": "10, 10"}, 400), ({"Content-Length": ["10", "20"]}, 400), ({"Content-Length": "1025"}, 413),
     ({"Content-Length": "10", "Transfer-Encoding": "chunked"}, 411), ({"Content-Length": "9" * 40}, 400)],
)
def test_a_body_length_is_declared_once_whole_and_within_the_limit(given, status):
    guard = Guard("127.0.0.1", 7860, limits=Limits(max_body=1024))
    with pytest.raises(Refused) as refusal:
        guard.body_length(headers(**given))
    assert refusal.value.status == status
    assert guard.body_length(headers(Content_Length="1024")) == 1024


def test_limits_are_checked():
    with pytest.raises(ValueError, match=r"request_seconds=0 must be a positive finite number"):
        Limits(request_seconds=0)
    with pytest.raises(ValueError, match=r"max_connections=0 must be a positive integer"):
        Limits(max_connections=0)
