"""Request hygiene of the one HTTP layer (``packrat.frontend.http1``), with auth off and on.

Raw bytes on a socket, one test per check its docstring lists: what is not
a well-formed HTTP/1.1 request gets the JSON ``400 bad_request``, is
recorded once in the access log and the metrics, stores nothing, and the
connection closes after the answer.  Then what well-formed requests rely
on: keep-alive, pipelining, ``100 Continue``, body limits.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.support.rawhttp import answers, exchange, header_lines
from tests.support.waiting import wait_until

HOST_CASES = {
    "no Host": b"",
    "two Hosts": b"Host: a\r\nHost: b\r\n",
    "Host a/b@c": b"Host: a/b@c\r\n",
    "Host with a comma": b"Host: a,b\r\n",
    "Host with a space": b"Host: a b\r\n",
}
# Every kind of route: the status page, a probe, a static file, exists, an
# object read, an upload, a delete, a WebDAV collection.
ROUTES = [
    b"GET / ",
    b"GET /healthz ",
    b"GET /static/packrat.css ",
    b"GET /exists/h/key ",
    b"GET /h/key ",
    b"PUT /h/nohost ",
    b"DELETE /h/key ",
    b"PROPFIND /h/ ",
]


def refused(server, request: bytes) -> dict:
    """``request`` must get one JSON 400 and a closed connection; its error body."""
    replies = answers(exchange(server.port, request))
    assert len(replies) == 1, replies  # nothing after: the connection closed
    status, body = replies[0]
    assert status == 400, (request, replies)
    error = json.loads(body)
    assert error["success"] is False and error["error"] == "bad_request", error
    assert body.endswith(b"\n")
    return error


@pytest.mark.parametrize("case", HOST_CASES, ids=list(HOST_CASES))
def test_host_must_be_one_well_formed_host_on_every_route(server, case):
    for route in ROUTES:
        body = b"stored?" if route.startswith(b"PUT") else b""
        request = (
            route
            + b"HTTP/1.1\r\n"
            + HOST_CASES[case]
            + header_lines(server.auth)
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        error = refused(server, request)
        assert "Host" in error["message"], error
    assert server.exists("h/nohost") is False


def test_http_1_0_may_omit_host(server):
    status, body = answers(exchange(server.port, b"GET /healthz HTTP/1.0\r\n\r\n"))[0]
    assert status == 200 and json.loads(body)["live"] is True


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /h/key HTTP/1.1 extra",  # a fourth part
        b"GET /h/key",  # no version (HTTP/0.9)
        b"GET /a b HTTP/1.1",  # a space in the target
        b"GET /a\x01b HTTP/1.1",  # a control character in the target
        b"GET /h/key HTTP/1.2",
        b"GET /h/key HTTP/2.0",
        b"GET /h/key HTTP/0.9",
        b"FOO /h/key HTTP/1.1",  # a method llhttp does not know
        b"get /h/key HTTP/1.1",  # methods are case-sensitive
    ],
)
def test_a_malformed_request_line_is_refused(server, request_line):
    refused(server, request_line + b"\r\nHost: x\r\n" + header_lines(server.auth) + b"\r\n")


@pytest.mark.parametrize(
    "header",
    [
        b"NoColon",
        b"Space : before-colon",
        b"X(A): bad-name",
        b"X-A: a\x01b",  # a control character
        b"X-A: a\x00b",
        b"X-A: a\r\n folded",  # obs-fold
        b"X-A: lone\rCR",
    ],
)
def test_a_malformed_header_line_is_refused(server, header):
    refused(server, b"GET /h/key HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")


def test_lines_must_end_with_crlf(server):
    refused(server, b"GET /h/key HTTP/1.1\nHost: x\n\n")


def test_headers_over_max_header_size_are_refused(server):
    big = b"X-Big: " + b"b" * (65 * 1024) + b"\r\n"  # the default max_header_size is 64K
    error = refused(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert "larger than" in error["message"]


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 3\r\nTransfer-Encoding: chunked",
        b"Content-Length: 3\r\nContent-Length: 3",
        b"Content-Length: 3\r\nContent-Length: 4",
        b"Content-Length: 3, 3",
        b"Content-Length: +3",
        b"Content-Length: 99999999999999999999",
        b"Transfer-Encoding: gzip",
        b"Transfer-Encoding: chunked, gzip",
    ],
)
def test_ambiguous_framing_is_refused_and_nothing_is_stored(server, framing):
    key = b"framing/" + str(abs(hash(framing))).encode()
    request = b"PUT /" + key + b" HTTP/1.1\r\nHost: x\r\n" + header_lines(server.auth) + framing
    refused(server, request + b"\r\n\r\nabc")
    assert server.exists(key.decode()) is False
    assert server.staging_files() == []


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\nabc\r\n", b"3\r\nabcX\r\n", b"3 4\r\nabc\r\n0\r\n\r\n"],
    ids=["size", "terminator", "space"],
)
def test_a_malformed_chunk_is_refused_and_its_staging_file_removed(server, wait_for, chunks):
    request = b"PUT /chunks/bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    refused(server, request + header_lines(server.auth) + b"\r\n" + chunks)
    wait_for(lambda: server.staging_files() == [], timeout=5)
    assert server.exists("chunks/bad") is False


def test_urls_are_decoded_as_utf_8(server):
    status, body = answers(
        exchange(
            server.port,
            b"GET /%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + header_lines(server.auth)
            + b"\r\n",
        )
    )[0]
    assert status == 400 and json.loads(body)["error"] == "bad_request"
    status, body = answers(
        exchange(
            server.port,
            b"GET /a%2F..%2Fb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + header_lines(server.auth)
            + b"\r\n",
        )
    )[0]
    assert status == 400 and json.loads(body)["error"] == "invalid_key"


def test_a_known_method_a_route_does_not_answer_is_405(server):
    raw = exchange(server.port, b"PATCH /h/key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, body = answers(raw)[0]
    assert status == 405 and json.loads(body)["error"] == "method_not_allowed"
    assert b"\r\nAllow: DELETE, GET, HEAD, POST, PUT\r\n" in raw


def test_a_page_refuses_a_body_over_64_kib(server):
    body = b"x" * (100 * 1024)
    request = b"POST /api/stats HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    status, reply = answers(
        exchange(server.port, request + header_lines(server.auth) + b"\r\n" + body)
    )[0]
    assert status == 413 and json.loads(reply)["error"] == "too_large"


def test_keep_alive_and_pipelined_requests_are_answered_in_order(server):
    assert server.http.put(server.url + "/pipe/a", data=b"first", timeout=10).status_code == 200
    one = b"GET /pipe/a HTTP/1.1\r\nHost: x\r\n" + header_lines(server.auth) + b"\r\n"
    last = b"GET /exists/pipe/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    replies = answers(exchange(server.port, one * 3 + last + header_lines(server.auth) + b"\r\n"))
    assert replies == [(200, b"first")] * 3 + [(200, b'{"present": true}\n')]


def test_http_1_0_keeps_the_connection_only_when_asked(server):
    raw = exchange(
        server.port, b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=1
    )
    assert b"\r\nConnection: keep-alive\r\n" in raw  # and it stayed open until our timeout
    raw = exchange(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert b"Connection: keep-alive" not in raw


def test_every_refusal_is_recorded_once_in_the_access_log_and_the_metrics(make_server):
    server = make_server(frontend={"processes": 1})
    marker = "refused-request-line"
    exchange(
        server.port, b"GET /x HTTP/1.1 junk\r\nHost: x\r\nUser-Agent: " + marker.encode() + b"\r\n"
    )
    refused(server, b"GET /x HTTP/1.1\r\nUser-Agent: no-host\r\n\r\n")
    exchange(server.port, b"\x16\x03\x01 not http at all\r\n\r\n")  # a TLS hello on a plain port

    def recorded() -> list[str]:
        return [line for line in server.log().splitlines() if " 400 sent=" in line]

    wait_until(lambda: len(recorded()) >= 3, 5, 0.1, detail=server.log)
    lines = recorded()
    assert len(lines) == 3, lines
    assert sum('"no-host"' in line for line in lines) == 1
    assert all("error=bad_request" in line for line in lines)
    metrics = server.http.get(server.url + "/metrics", timeout=10).text
    counts = re.findall(r'packrat_http_requests_total\{[^}]*status="400"[^}]*\} (\S+)', metrics)
    assert sum(float(n) for n in counts) == 3, counts


def test_an_upgrade_is_never_made_and_a_body_with_one_is_refused(server):
    """``curl --http2`` on plain HTTP asks for h2c: answered in HTTP/1.1, and the next
    request on the connection too; a body with an upgrade request is refused."""
    upgrade = (
        b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
    )
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    replies = answers(exchange(server.port, first + last))
    assert [status for status, _ in replies] == [200, 200], replies
    put = b"PUT /h/upgraded HTTP/1.1\r\nHost: x\r\n" + upgrade + header_lines(server.auth)
    refused(server, put + b"Content-Length: 3\r\n\r\nabc")
    assert server.exists("h/upgraded") is False
