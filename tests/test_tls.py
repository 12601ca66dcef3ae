"""HTTPS served directly from ``[server] certfile/keyfile``, with a certificate made here."""

from __future__ import annotations

import pytest
import requests

from packrat.core import settings as config


def test_https_round_trip(https_server, certificate):
    server, url = https_server
    cafile = certificate[2]
    reply = requests.put(url + "/secure/doc", data=b"over tls", verify=str(cafile), timeout=10)
    assert reply.status_code == 200, reply.text
    reply = requests.get(url + "/secure/doc", verify=str(cafile), timeout=10)
    assert reply.content == b"over tls"
    reply = requests.get(url + "/secure/doc", headers={"Range": "bytes=5-"}, verify=str(cafile))
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
