"""HTTPS served directly from ``[server] certfile/keyfile``, with a certificate made here.

The round trip runs with access control off and on (``https_server``)."""

from __future__ import annotations

import pytest
import requests

from packrat.core import settings as config


def test_https_round_trip(https_server):
    server, url = https_server, https_server.url
    reply = server.http.put(url + "/secure/doc", data=b"over tls", timeout=10)
    assert reply.status_code == 200, reply.text
    reply = server.http.get(url + "/secure/doc", timeout=10)
    assert reply.content == b"over tls"
    reply = server.http.get(url + "/secure/doc", headers={"Range": "bytes=5-"}, timeout=10)
    assert reply.status_code == 206 and reply.content == b"tls"
    # Plain HTTP on the TLS port gets nowhere.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/secure/doc", timeout=5)
    # An untrusted certificate is refused by a verifying client.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/", timeout=5)


def test_bad_certificate_config_is_a_clear_error(tmp_path, certificate):
    certfile, keyfile, _ = certificate
    path = tmp_path / "p.ini"
    path.write_text(f"[server]\nkeyfile = {keyfile}\n")
    with pytest.raises(config.ConfigError, match="set certfile too"):
        config.load(path)
    path.write_text(f"[server]\ncertfile = {keyfile}\nkeyfile = {keyfile}\n")
    with pytest.raises(config.ConfigError, match="cannot load the certificate"):
        config.load(path)
    path.write_text(f"[server]\ncertfile = {certfile}\nkeyfile = {keyfile}\n")
    assert config.load(path).ssl_context() is not None
