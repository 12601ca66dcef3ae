"""Access control: off by default; bearer tokens and htpasswd (bcrypt, sha-crypt)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import bcrypt
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from passlib.hash import sha512_crypt

from packrat.core import settings as config
from packrat.core.errors import Forbidden, Unauthorized
from packrat.core.htpasswd import load_htpasswd, verify_password
from packrat.frontend.auth import READ, WRITE, Authenticator

READER = "r" * 8 + "-read-token-0001"
WRITER = "w" * 8 + "-write-token-0001"


def _htpasswd(tmp_path):
    path = tmp_path / "users.htpasswd"
    alice = bcrypt.hashpw(b"alice-pw", bcrypt.gensalt(4)).decode()
    bob = sha512_crypt.using(rounds=5000).hash("bob-pw")
    path.write_text(f"# comment\n\nalice:{alice}\nbob:{bob}\n")
    return path


def test_auth_is_off_by_default():
    assert config.Settings().auth_enabled is False
    assert config.load(Path("etc/packrat.ini.example")).auth_enabled is False


def test_tokens(make_server):
    server = make_server(
        wait=False,
        auth={"enabled": "true", "read_tokens": READER, "write_tokens": WRITER},
    )
    read = {"Authorization": f"Bearer {READER}"}
    write = {"Authorization": f"Bearer {WRITER}"}
    server.wait_answering("/", headers=read)
    url = server.url
    # Nothing without credentials, and the challenge names the scheme.
    for method, path in (
        ("GET", "/"),
        ("GET", "/k"),
        ("HEAD", "/k"),
        ("GET", "/exists/k"),
        ("POST", "/k"),
        ("PUT", "/k"),
        ("DELETE", "/k"),
    ):
        reply = requests.request(method, url + path, data=b"x", timeout=10)
        assert reply.status_code == 401, (method, path)
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="packrat"'
        if method != "HEAD":
            assert reply.json()["error"] == "unauthorized"
    wrong = {"Authorization": "Bearer " + "x" * 20}
    assert requests.get(url + "/k", headers=wrong, timeout=10).status_code == 401
    assert (
        requests.get(url + "/k", headers={"Authorization": "Bearer"}, timeout=10).status_code == 401
    )
    # A read token reads but may not write: 403.
    reply = requests.put(url + "/k", data=b"x", headers=read, timeout=10)
    assert reply.status_code == 403 and reply.json()["error"] == "forbidden"
    assert requests.delete(url + "/k", headers=read, timeout=10).status_code == 403
    # A write token does both.
    assert requests.put(url + "/k", data=b"data", headers=write, timeout=10).status_code == 200
    reply = requests.post(url + "/k2", files={"file": ("f", b"2")}, headers=write, timeout=10)
    assert reply.status_code == 200
    assert requests.get(url + "/k", headers=read, timeout=10).content == b"data"
    assert requests.get(url + "/k", headers=write, timeout=10).content == b"data"
    assert requests.get(url + "/exists/k", headers=read, timeout=10).json() == {"present": True}
    # Authenticated reads are private: no shared cache may keep them.
    assert (
        requests.get(url + "/k", headers=read, timeout=10)
        .headers["Cache-Control"]
        .startswith("private")
    )
    # The status page works with auth on and shows no secret.
    page = requests.get(url + "/", headers=read, timeout=10)
    assert page.status_code == 200 and "Objects" in page.text
    assert READER not in page.text and WRITER not in page.text
    # The API description and the stylesheet are public.
    assert requests.get(url + "/api/openapi.json", timeout=10).status_code == 200
    assert requests.get(url + "/static/packrat.css", timeout=10).status_code == 200
    assert requests.delete(url + "/k", headers=write, timeout=10).status_code == 200


def test_htpasswd_basic(make_server, tmp_path):
    server = make_server(
        wait=False,
        auth={"enabled": "yes", "htpasswd": _htpasswd(tmp_path), "write_users": "alice"},
    )
    server.wait_answering("/", auth=("bob", "bob-pw"))
    url = server.url
    reply = requests.get(url + "/k", timeout=10)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="packrat", charset="UTF-8"'
    # alice (bcrypt) writes; bob (sha512-crypt) only reads.
    reply = requests.put(url + "/k", data=b"v", auth=("alice", "alice-pw"), timeout=10)
    assert reply.status_code == 200
    assert (
        requests.put(url + "/k", data=b"v", auth=("bob", "bob-pw"), timeout=10).status_code == 403
    )
    assert requests.get(url + "/k", auth=("bob", "bob-pw"), timeout=10).content == b"v"
    for user, password in (("alice", "nope"), ("bob", "alice-pw"), ("carol", "x"), ("", "")):
        reply = requests.get(url + "/k", auth=(user, password), timeout=10)
        assert reply.status_code == 401, user
    for header in ("Basic !!!", "Basic " + "YWxpY2U=", "Digest x", "Bearer alice-pw"):
        reply = requests.get(url + "/k", headers={"Authorization": header}, timeout=10)
        assert reply.status_code == 401, header
    # A browser on the status page: Basic works there too.
    page = requests.get(url + "/", auth=("alice", "alice-pw"), timeout=10)
    assert page.status_code == 200 and "$2b$" not in page.text


def test_anonymous_read(make_server):
    server = make_server(auth={"enabled": "on", "write_tokens": WRITER, "anonymous_read": "on"})
    reply = requests.put(server.url + "/k", data=b"x", timeout=10)
    assert reply.status_code == 401
    write = {"Authorization": f"Bearer {WRITER}"}
    assert requests.put(server.url + "/k", data=b"x", headers=write, timeout=10).status_code == 200
    reply = server.get("k")
    assert reply.content == b"x"
    assert reply.headers["Cache-Control"] == "public, no-cache"


def test_authenticator_unit(tmp_path):
    settings = config.Settings(
        auth_enabled=True,
        auth_read_tokens=(READER,),
        auth_write_tokens=(WRITER,),
        auth_htpasswd=_htpasswd(tmp_path),
        auth_write_users=("*",),
    )
    auth = Authenticator(settings)
    assert len(auth.challenges) == 2
    bob = "Basic Ym9iOmJvYi1wdw=="  # bob:bob-pw

    async def check():
        # Tokens and remembered Basic credentials are decided at once (None), a
        # password to hash is an awaitable; a refusal raises either way.
        assert auth.check(READ, f"Bearer {READER}") is None
        assert auth.check(WRITE, f"bearer  {WRITER} ") is None
        with pytest.raises(Forbidden):
            auth.check(WRITE, f"Bearer {READER}")
        with pytest.raises(Unauthorized):
            auth.check(READ, "Bearer " + READER[:-1])
        with pytest.raises(Unauthorized):
            auth.check(READ, None)
        first = auth.check(WRITE, bob)
        assert first is not None
        await first
        assert auth.check(WRITE, bob) is None  # remembered: no hash this time
        with pytest.raises(Unauthorized):
            await auth.require(READ, "Basic " + "Ym9iOndyb25n")  # bob:wrong
        await auth.require(WRITE, f"Bearer {WRITER}")

    asyncio.run(check())
    assert Authenticator(config.Settings()).public_reads is True


@given(
    st.lists(
        st.tuples(
            st.sampled_from([READ, WRITE]),
            st.sampled_from(
                [
                    f"Bearer {READER}",
                    f"bearer  {WRITER} ",
                    f"Bearer {WRITER}",
                    f"Bearer {READER[:-1]}",
                    "Bearer nope",
                    "Basic Ym9iOmJvYi1wdw==",
                    f"Token {WRITER}",
                    "",
                ]
            ),
        ),
        max_size=30,
    )
)
def test_remembered_tokens_answer_as_a_first_check_does(checks):
    """A token found valid is remembered (by its MAC): a later check with it answers
    what a fresh check answers, and what was refused is never remembered.  The usual
    header's lookup (``Bearer <token>`` as configured) answers what the full check
    answers, and leaves the MAC's memory alone."""
    settings = config.Settings(
        auth_enabled=True, auth_read_tokens=(READER,), auth_write_tokens=(WRITER,)
    )
    auth = Authenticator(settings)
    for right, header in checks:
        fresh = Authenticator(settings)
        full = Authenticator(settings)
        full._bearer.clear()  # every header the long way: compare_digest, then the MAC
        assert _answer(auth, right, header) == _answer(fresh, right, header)
        assert _answer(fresh, right, header) == _answer(full, right, header)
    usual = set(auth._bearer)
    assert usual == {f"Bearer {READER}", f"Bearer {WRITER}"}
    valid = {h for _, h in checks if _answer(Authenticator(settings), READ, h) == "granted"}
    assert len(auth._remembered) == len(valid - usual)


def _answer(auth: Authenticator, right: str, header: str) -> str:
    try:
        return "granted" if auth.check(right, header) is None else "awaitable"
    except Forbidden:
        return "forbidden"
    except Unauthorized:
        return "unauthorized"


def test_a_changed_htpasswd_file_takes_effect_within_a_second(tmp_path):
    """Remembered credentials are forgotten when the file changes; a removed user is out."""
    path = _htpasswd(tmp_path)
    auth = Authenticator(
        config.Settings(auth_enabled=True, auth_htpasswd=path, auth_write_users=("*",))
    )
    bob = "Basic Ym9iOmJvYi1wdw=="  # bob:bob-pw

    async def check():
        await auth.require(READ, bob)
        assert auth.check(READ, bob) is None  # remembered
        path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")  # bob removed
        deadline = time.monotonic() + 5
        while True:
            try:
                await auth.require(READ, bob)
            except Unauthorized:
                break
            assert time.monotonic() < deadline, "a removed user kept access"
            await asyncio.sleep(0.1)

    asyncio.run(check())


def test_htpasswd_parsing_and_hashes(tmp_path):
    path = _htpasswd(tmp_path)
    users = load_htpasswd(path)
    assert sorted(users) == ["alice", "bob"]
    assert verify_password("alice-pw", users["alice"]) is True
    assert verify_password("bob-pw", users["bob"]) is True
    assert verify_password("wrong", users["bob"]) is False
    assert verify_password("x", "$2b$04$garbage") is False
    long_pw = "p" * 100  # bcrypt uses the first 72 bytes, as htpasswd -B does
    hashed = bcrypt.hashpw(long_pw.encode()[:72], bcrypt.gensalt(4)).decode()
    assert verify_password(long_pw, hashed) is True
    bad = tmp_path / "bad.htpasswd"
    bad.write_text("carol:$apr1$abc$def\n")
    with pytest.raises(ValueError, match="line 1: unsupported hash"):
        load_htpasswd(bad)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[auth]\nenabled = true\n", "no read_tokens, write_tokens, list_tokens or htpasswd"),
        ("[auth]\nenabled = maybe\n", "is not a boolean"),
        ("[auth]\nread_tokens = short\n", "at least 16 characters"),
        ("[auth]\nhtpasswd = /nonexistent/file\n", "is not a readable file"),
    ],
)
def test_auth_config_errors(tmp_path, body, message):
    path = tmp_path / "p.ini"
    path.write_text(body)
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert message in str(info.value)
