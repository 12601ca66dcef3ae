"""The public HTTP API against a real ``packrat serve`` on 127.0.0.1, with access control
off and on (the ``server`` fixture) but for the two tests that need a server of their own."""

from __future__ import annotations

import hashlib
import json

import requests

from tests.support.rawhttp import request
from tests.support.waiting import wait_until


def test_readme_example_round_trip(packrat_server, tmp_path):
    # The README's requests example, verbatim but for the URL and file.
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 not really a pdf\n" * 100)
    url = packrat_server.url

    with open(report, "rb") as f:
        r = requests.post(f"{url}/reports/2024/q1", files={"file": f})
    print(r.json())  # {'success': True, 'key': 'reports/2024/q1', ...}

    r = requests.get(f"{url}/reports/2024/q1")
    with open(tmp_path / "q1.pdf", "wb") as f:
        f.write(r.content)

    print(requests.get(f"{url}/exists/reports/2024/q1").json())  # {'present': True}

    assert (tmp_path / "q1.pdf").read_bytes() == report.read_bytes()
    assert r.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'


def test_post_reports_key_size_and_digest(server):
    data = b"packrat" * 1000
    reply = server.upload("a/b/c.txt", data, filename="c.txt")
    assert reply.status_code == 200
    body = reply.json()
    assert body["success"] is True
    assert body["key"] == "a/b/c.txt"
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()


def test_get_sends_attachment_with_uploaded_name(server):
    server.upload("doc", b"hello world", filename="notes final.txt")
    reply = server.get("doc")
    assert reply.status_code == 200
    assert reply.content == b"hello world"
    assert reply.headers["Content-Disposition"] == 'attachment; filename="notes final.txt"'
    assert reply.headers["Content-Length"] == "11"
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.headers["ETag"] == f'"{hashlib.sha256(b"hello world").hexdigest()}"'


def test_non_ascii_filename_is_encoded_not_injected(server):
    server.upload("unicode", b"x", filename="r\u00e9sum\u00e9;v2.txt")
    disposition = server.get("unicode").headers["Content-Disposition"]
    assert disposition == (
        "attachment; filename=\"r_sum_;v2.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%3Bv2.txt"
    )
    # A quote sent backslash-escaped in the part header stays out of the quoted string.
    boundary = "QQ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a\\"b.txt"\r\n'
        f"\r\ndata\r\n--{boundary}--\r\n"
    ).encode()
    ctype = f"multipart/form-data; boundary={boundary}"
    status, _ = _raw_post(server, "quoted", body, ctype)
    assert status == 200
    disposition = server.get("quoted").headers["Content-Disposition"]
    assert disposition.count('"') == 2, disposition


def test_missing_object_is_404_json(server):
    reply = server.get("nothing/here")
    assert reply.status_code == 404
    assert reply.json() == {
        "success": False,
        "error": "not_found",
        "message": "no object under key 'nothing/here'",
    }


def test_exists(server):
    assert server.exists("later") is False
    server.upload("later", b"1")
    assert server.exists("later") is True


def test_overwrite_replaces_content_and_name(server):
    server.upload("k", b"first", filename="one.txt")
    server.upload("k", b"second version", filename="two.txt")
    reply = server.get("k")
    assert reply.content == b"second version"
    assert 'filename="two.txt"' in reply.headers["Content-Disposition"]


def test_invalid_keys_are_400_json(server):
    boundary = "B0"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
        f"x\r\n--{boundary}--\r\n"
    ).encode()
    ctype = f"multipart/form-data; boundary={boundary}"
    # Sent raw: requests would normalise the dot segments away.
    for key in (
        "a//b",
        "a/../b",
        "..",
        "a/./b",
        "a%00b",
        "api/thing",
        "%2e%2e/etc/passwd",
        "a%2F..%2F..%2Fb",
        "..%5c..%5cwin",
        "trailing/",
    ):
        status, payload = _raw_post(server, key, body, ctype)
        assert status == 400, (key, status, payload)
        assert payload["success"] is False and payload["error"] == "invalid_key", payload
    status, payload = _raw_request(server, "GET", "/a%2F..%2Fb")
    assert status == 400 and payload["error"] == "invalid_key"
    # Nothing was written anywhere but objects/.
    assert sorted(p.name for p in server.cache.iterdir()) == ["objects", "staging", "state"]


def test_missing_file_field_is_400_naming_the_field_found(server):
    url = f"{server.url}/no-file-field"
    big = b"x" * 100_000
    for form, found in (
        ({"files": {"other": ("f", b"data")}}, "before field 'other' (a file)"),
        ({"files": {"upload": ("notes.bin", big)}}, "before field 'upload' (a file)"),
        # curl -F upload=<notes.bin: the file's bytes as a plain field
        ({"files": {"upload": (None, big)}}, "before field 'upload' (longer than 1024 bytes"),
        ({"data": {"sha256": "0" * 64}, "files": {}}, "(fields found: 'sha256', 'note')"),
    ):
        if not form["files"]:  # a form with no file at all
            form["files"] = {"note": (None, b"hello")}
        reply = server.http.post(url, timeout=10, **form)
        assert reply.status_code == 400, reply.text
        body = reply.json()
        assert body["error"] == "missing_field", body
        assert "the form has no field 'file'" in body["message"] and found in body["message"]
    assert server.exists("no-file-field") is False
    assert server.staging_files() == []


def test_not_multipart_is_400(server):
    reply = server.http.post(f"{server.url}/k", data=b"raw bytes", timeout=10)
    assert reply.status_code == 400
    body = reply.json()
    assert body["success"] is False and body["error"] == "malformed_multipart"


def _raw_post(server, key: str, body: bytes, content_type: str) -> tuple[int, dict]:
    return _raw_request(server, "POST", f"/{key}", body, {"Content-Type": content_type})


def _raw_request(server, method, path, body=None, headers=None) -> tuple[int, dict]:
    """One request exactly as written (no client-side path normalisation); its JSON body."""
    status, answer = request(server.port, method, path, body, {**server.auth, **(headers or {})})
    return status, json.loads(answer)


def test_malformed_multipart_is_400_never_500(server):
    boundary = "XyZ"
    ctype = f"multipart/form-data; boundary={boundary}"
    truncated = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        "some data without the closing boundary"
    ).encode()
    garbage = b"this is not multipart at all\r\n\r\n--nope--"
    bad_header = f"--{boundary}\r\nno colon header line\r\n\r\ndata\r\n--{boundary}--\r\n".encode()
    for body in (truncated, garbage, bad_header, b""):
        status, payload = _raw_post(server, "m", body, ctype)
        assert status == 400, (body, status, payload)
        assert payload["success"] is False
        assert payload["error"] in ("malformed_multipart", "missing_field")
    status, payload = _raw_post(server, "m", b"x", "multipart/form-data")
    assert status == 400 and payload["error"] == "malformed_multipart"
    assert server.exists("m") is False
    assert server.staging_files() == []


def test_form_upload_on_status_page(server):
    page = server.http.get(server.url + "/", timeout=10)
    assert page.status_code == 200
    for label in ("Objects", "Bytes used", "Hits", "Misses", "Evictions"):
        assert label in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert 'name="file"' in page.text and 'name="key"' in page.text
    # Submit the form as a browser would: the key field, then the file.
    reply = server.http.post(
        server.url + "/",
        data={"key": "from/form"},
        files={"file": ("form.txt", b"via the form")},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert server.get("from/form").content == b"via the form"


def test_status_page_counts_hits_and_misses(packrat_server):
    packrat_server.upload("counted", b"x")
    packrat_server.get("counted")
    packrat_server.get("counted")
    packrat_server.get("absent")
    expected = (
        "<th>Objects</th><td>1</td>",
        "<th>Hits</th><td>2</td>",
        "<th>Misses</th><td>1</td>",
    )
    pages = []

    def counted() -> bool:  # reads are reported in batches
        pages.append(requests.get(packrat_server.url + "/", timeout=10).text)
        return all(row in pages[-1] for row in expected)

    wait_until(counted, what="the counts on the page", detail=lambda: pages[-1])
