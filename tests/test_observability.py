"""Operations: /metrics across processes, /healthz and /readyz, /api/stats, the access log.

Real ``packrat serve`` groups (or a coordinator and a front end started
alone) on 127.0.0.1; metrics are read back with prometheus_client's own
parser, logs from the processes' output after they stopped (so buffered
access lines are in).
"""

from __future__ import annotations

import http.client
import json
import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import wait_until

READER = "r" * 8 + "-read-token-0001"


def scrape(server, **kw) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``GET /metrics``: (name, sorted labels) -> value."""
    reply = requests.get(server.url + "/metrics", timeout=10, **kw)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, ls), value in samples.items() if n == name and wanted <= set(ls))


def scrape_counted(server, requests_per_route: dict[str, int]) -> dict:
    """``scrape`` once every request sent so far is counted: each front end hands its counts
    over a turn of its loop after its answers, so another's scrape may see them a moment later."""

    def counted() -> dict | None:
        samples = scrape(server)
        for route, count in requests_per_route.items():
            if total(samples, "packrat_http_requests_total", route=route) < count:
                return None
        return samples

    return wait_until(counted, what=f"requests counted: {requests_per_route}")


def healthz_answers(server, count: int) -> dict[int, int]:
    """Send ``count`` GET /healthz on new connections; how many each front end answered."""
    answered: dict[int, int] = {}
    for _ in range(count):
        reply = requests.get(server.url + "/healthz", timeout=10)
        assert reply.status_code == 200
        number = reply.json()["frontend"]
        answered[number] = answered.get(number, 0) + 1
    return answered


def test_metrics_add_up_every_front_end(make_server):
    server = make_server()
    answered = healthz_answers(server, 60)
    assert len(answered) == 2, answered  # the kernel spread the connections
    for n in range(3):
        assert server.upload(f"m/{n}", b"x" * 1000).status_code == 200
    assert server.get("m/0").status_code == 200
    assert server.get("m/none").status_code == 404
    samples = scrape_counted(server, {"/healthz": 60, "/{key}": 5})
    assert total(samples, "packrat_http_requests_total", route="/healthz") == 60
    assert total(samples, "packrat_http_requests_total", route="/healthz", status="200") == 60
    assert total(samples, "packrat_http_request_duration_seconds_count", route="/healthz") == 60
    assert total(samples, "packrat_http_requests_total", route="/{key}", method="POST") == 3
    assert total(samples, "packrat_http_requests_total", route="/{key}", status="404") == 1
    assert total(samples, "packrat_http_sent_bytes_total", route="/{key}") >= 1000
    assert total(samples, "packrat_http_received_bytes_total", route="/{key}") > 3000
    assert total(samples, "packrat_cache_hits_total") == 1
    assert total(samples, "packrat_cache_misses_total") == 1
    assert total(samples, "packrat_coordinator_request_duration_seconds_count", op="commit") == 3
    assert total(samples, "packrat_uploads_in_flight") == 0
    assert total(samples, "packrat_restarts_total") == 0
    # The coordinator's own figures, from one Stats round trip.
    assert total(samples, "packrat_coordinator_up") == 1
    assert total(samples, "packrat_cache_objects") == 3
    assert total(samples, "packrat_cache_max_bytes") == 64 * 1024 * 1024
    assert 3000 < total(samples, "packrat_cache_bytes") < 64 * 1024 * 1024
    assert total(samples, "packrat_cache_commits_total") == 3
    assert total(samples, "packrat_cache_evictions_total") == 0
    assert total(samples, "packrat_info", policy="s3gdsf") == 1


def test_counters_survive_a_front_end_killed_and_restarted(make_server, wait_for):
    server = make_server()
    answered = healthz_answers(server, 40)
    rows = server.stats_listing(3)["processes"][1:]  # both front ends have heartbeated
    processes = {p["number"]: p["pid"] for p in rows}
    number = max(answered, key=answered.get)  # a front end with requests counted
    victim = processes[number]
    next(p for p in server.children("frontend") if p.pid == victim).kill()

    def replaced() -> bool:
        try:  # a connection queued at the killed process is reset
            rows = server.stats()["processes"][1:]
        except requests.ConnectionError:
            return False
        return any(p["number"] == number and p["pid"] != victim for p in rows)

    wait_for(replaced, timeout=20)
    samples = scrape_counted(server, {"/healthz": 40})
    assert total(samples, "packrat_http_requests_total", route="/healthz") == 40
    assert total(samples, "packrat_restarts_total", role="frontend") == 1
    assert total(samples, "packrat_restarts_total", role="coordinator") == 0
    healthz_answers(server, 10)
    samples = scrape_counted(server, {"/healthz": 50})
    assert total(samples, "packrat_http_requests_total", route="/healthz") == 50


def test_uploads_in_flight_counts_every_front_end(make_server, wait_for):
    server = make_server()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"s" * 1000)
    wait_for(lambda: server.staging_files())
    # Each front end writes its figures for the others once per loop turn.
    wait_for(lambda: total(scrape(server), "packrat_uploads_in_flight") == 1)
    for _ in range(6):  # whichever front end answers the scrape
        assert total(scrape(server), "packrat_uploads_in_flight") == 1
    sock.sendall(b"s" * 99000)
    assert b"200 OK" in sock.recv(4096)
    sock.close()
    wait_for(lambda: total(scrape(server), "packrat_uploads_in_flight") == 0)
    for _ in range(6):
        assert total(scrape(server), "packrat_uploads_in_flight") == 0


def test_healthz_and_readyz_follow_the_coordinator(make_server, wait_for):
    coordinator = make_server("coordinator")
    frontend = make_server("frontend", coordinator={"timeout": 2})
    assert requests.get(frontend.url + "/readyz", timeout=10).json() == {
        "ready": True,
        "frontend": 0,
    }
    coordinator.process.kill()
    coordinator.process.wait(5)
    reply = requests.get(frontend.url + "/readyz", timeout=10)
    assert reply.status_code == 503
    assert reply.headers["Retry-After"].isdigit()
    assert reply.json()["error"] == "coordinator_unavailable"
    assert requests.head(frontend.url + "/readyz", timeout=10).status_code == 503
    live = requests.get(frontend.url + "/healthz", timeout=10)
    assert live.status_code == 200 and live.json() == {"live": True, "frontend": 0}
    # Probes that ask with HEAD get the same status, headers only.
    head = requests.head(frontend.url + "/healthz", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == live.headers["Content-Length"]
    samples = scrape(frontend)  # the front end's own part still answers
    assert total(samples, "packrat_coordinator_up") == 0
    assert total(samples, "packrat_http_requests_total", route="/readyz", status="503") == 2
    make_server("coordinator")
    wait_for(lambda: requests.get(frontend.url + "/readyz", timeout=10).status_code == 200)
    assert requests.head(frontend.url + "/readyz", timeout=10).status_code == 200


def test_api_stats(make_server):
    server = make_server(cache={"policy": "lru"})
    fresh = server.stats()
    assert fresh["hit_ratio"] is None and fresh["recent_uploads"] == []
    for n in range(12):
        reply = server.upload(f"s/{n}", b"d" * (100 + n), filename=f"f{n}.bin")
        assert reply.status_code == 200
    assert requests.delete(server.url + "/s/11", timeout=10).status_code == 200
    assert server.get("s/3").content == b"d" * 103
    server.get("s/absent")
    server.stats_listing(3)  # the coordinator and each front end, once it has heartbeated
    figures = server.stats_grown(fresh, hits=1, misses=1)  # reads arrive in batches
    assert figures["version"]
    assert figures["uptime_seconds"] > 0
    assert figures["objects"] == 11 and figures["commits"] == 12
    assert figures["policy"] == "lru" and figures["max_size"] == 64 * 1024 * 1024
    assert figures["hits"] == 1 and figures["misses"] == 1 and figures["hit_ratio"] == 0.5
    assert figures["evictions"] == 0 and figures["evicted_bytes"] == 0
    assert figures["bytes"] > 11 * 100
    coordinator, *frontends = figures["processes"]
    assert coordinator["role"] == "coordinator"
    assert coordinator["pid"] == server.children("coordinator")[0].pid
    assert {p["pid"] for p in frontends} == {p.pid for p in server.children("frontend")}
    assert [(p["number"], p["state"]) for p in frontends] == [(0, "running"), (1, "running")]
    recent = figures["recent_uploads"]
    # The 10 latest uploads were s/2 to s/11, and s/11 was deleted since.
    assert [r["key"] for r in recent] == [f"s/{n}" for n in range(10, 1, -1)]
    assert recent[0]["size"] == 110 and recent[0]["filename"] == "f10.bin"
    assert recent[0]["stored_at"] >= recent[1]["stored_at"]
    history = figures["history"]
    assert history["interval_seconds"] == 60 and len(history["buckets"]) == 60
    starts = [b["start"] for b in history["buckets"]]
    assert starts == sorted(starts) and starts[-1] - starts[0] == 59 * 60
    assert sum(b["uploads"] for b in history["buckets"]) == 12
    assert sum(b["hits"] for b in history["buckets"]) == 1
    assert sum(b["misses"] for b in history["buckets"]) == 1
    assert sum(b["bytes_out"] for b in history["buckets"]) >= 103
    assert sum(b["bytes_in"] for b in history["buckets"]) > 12 * 100
    # The status page still shows its figures.
    page = requests.get(server.url + "/", timeout=10).text
    assert "<th>Objects</th><td>11</td>" in page


def test_operations_endpoints_with_auth(make_server):
    sections = {"auth": {"enabled": "true", "read_tokens": READER}}
    server = make_server(wait=False, **sections)
    read = {"Authorization": f"Bearer {READER}"}
    server.wait_answering("/readyz")  # as a load balancer polls, without credentials
    for path in ("/healthz", "/readyz", "/api/openapi.json"):
        assert requests.get(server.url + path, timeout=10).status_code == 200, path
    for path in ("/metrics", "/api/stats"):
        reply = requests.get(server.url + path, timeout=10)
        assert reply.status_code == 401 and reply.json()["error"] == "unauthorized", path
        assert requests.get(server.url + path, headers=read, timeout=10).status_code == 200
    server.stop()  # the next server uses the same cache root
    public = make_server(wait=False, metrics={"public": "true"}, **sections)
    public.wait_answering("/readyz")
    assert requests.get(public.url + "/metrics", timeout=10).status_code == 200
    assert requests.get(public.url + "/api/stats", timeout=10).status_code == 401


def _requests_with_markers(server, wait_for) -> dict[str, int]:
    """One request of each kind, each with its own User-Agent; their expected statuses."""
    expected = {}

    def send(method: str, path: str, status: int, body: bytes | None = None, **headers) -> None:
        marker = f"obs-{len(expected)}"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request(method, path, body=body, headers={"User-Agent": marker, **headers})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == status, (method, path, response.status)
        expected[marker] = status

    send("PUT", "/log/a", 200, b"a" * 500)
    send("GET", "/log/a", 200)
    send("HEAD", "/log/a", 200)
    send("GET", "/log/absent", 404)
    send("GET", "/metrics/x", 400)  # a reserved key
    send("PATCH", "/log/a", 405)
    send("PUT", "/log/big", 413, b"b" * 10, **{"Content-Length": str(2 << 20)})
    send("GET", "/exists/log/a", 200)
    send("GET", "/static/packrat.css", 200)
    send("GET", "/healthz", 200)
    send("DELETE", "/log/a", 200)
    # Broken framing, answered before any handler runs.
    marker = f"obs-{len(expected)}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /log/framing HTTP/1.1\r\nHost: x\r\nUser-Agent: " + marker.encode() + b"\r\n"
            b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"
        )
        assert b" 400 " in sock.recv(4096)
    expected[marker] = 400
    # An upload whose client goes away: status 499, once.
    marker = f"obs-{len(expected)}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /log/abandoned HTTP/1.1\r\nHost: x\r\nUser-Agent: " + marker.encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"x" * 1000
        )
        wait_for(lambda: server.staging_files())
    wait_for(lambda: not server.staging_files())  # the front end saw the close
    expected[marker] = 499
    return expected


def test_access_log_text_has_one_line_per_request(make_server, wait_for):
    server = make_server(cache={"max_size": "64M", "max_file_size": "1M"})
    expected = _requests_with_markers(server, wait_for)
    server.stop()
    lines = server.log().splitlines()
    for marker, status in expected.items():
        found = [line for line in lines if f'"{marker}"' in line]
        assert len(found) == 1, (marker, found)
        line = found[0]
        assert " INFO [frontend " in line and f" {status} sent=" in line, line
        assert "127.0.0.1 " in line and "ms " in line
    # Errors carry their code and detail on that one line, and nowhere else.
    (absent,) = [line for line in lines if "/log/absent" in line]
    assert "error=not_found" in absent and "no object under key" in absent
    assert len([line for line in lines if "/log/big" in line]) == 1
    assert len([line for line in lines if "/log/framing" in line]) == 1
    assert "Traceback" not in server.log()


def test_access_log_json_has_one_object_per_request(make_server, wait_for):
    server = make_server(
        cache={"max_size": "64M", "max_file_size": "1M"},
        log={"format": "json", "level": "warning"},
    )
    expected = _requests_with_markers(server, wait_for)
    server.stop()
    # Every line of every process is one JSON object.
    entries = [json.loads(line) for line in server.log().splitlines()]
    for marker, status in expected.items():
        found = [e for e in entries if e.get("user_agent") == marker]
        assert len(found) == 1, (marker, found)
        (entry,) = found
        assert entry["status"] == status and entry["logger"] == "packrat.access"
        assert entry["level"] == "info" and entry["process"].startswith("frontend ")
        assert entry["frontend"] in (0, 1) and entry["remote"] == "127.0.0.1"
        assert entry["duration_ms"] >= 0 and entry["time"].endswith("+00:00")
        assert {"method", "path", "bytes_sent", "bytes_received"} <= set(entry)
    methods = sorted(e["method"] for e in entries if e.get("path") == "/log/a")
    assert methods == ["DELETE", "GET", "HEAD", "PATCH", "PUT"]
    errors = {e["path"]: e.get("error") for e in entries if "path" in e}
    assert errors["/log/absent"] == "not_found"
    assert errors["/log/big"] == "too_large"
    assert errors["/log/framing"] == "bad_request"
    assert errors["/healthz"] is None
    assert errors["/log/abandoned"] is None
    # level = warning: no info line but the access log.
    assert all(e["logger"] == "packrat.access" for e in entries if e["level"] == "info")


def test_access_log_off_keeps_only_server_errors(make_server):
    coordinator = make_server("coordinator")
    frontend = make_server("frontend", log={"access": "off"}, coordinator={"timeout": 2})
    assert frontend.get("quiet/absent").status_code == 404
    coordinator.process.kill()
    coordinator.process.wait(5)
    assert frontend.upload("quiet/refused", b"x").status_code == 503
    frontend.stop()
    lines = frontend.log().splitlines()
    assert not [line for line in lines if "quiet/absent" in line]
    (refused,) = [line for line in lines if "quiet/refused" in line]
    assert " WARNING [frontend 0] " in refused and "error=coordinator_unavailable" in refused
