"""Who may talk to the coordinator: the socket's file mode, or CURVE keys over TCP.

Any process that can reach the coordinator's socket can commit and delete
objects.  An ``ipc://`` socket is made mode 0600 (``server._bind``), so only
its user can.  A ``tcp://`` endpoint is reachable by every local user even
on a loopback address (with HTTP auth on, any of them could delete objects
behind it), and by other hosts on any other address: Packrat refuses every
``tcp://`` endpoint unless ``[coordinator] curve_keys`` names a directory of
ZeroMQ CURVE certificates (``packrat keygen DIR``; the rule is
``core.settings.endpoint_problem``).  Then the coordinator encrypts and
authenticates every connection and accepts only clients whose public key is
in that directory (ZeroMQ's ZAP handler, run by pyzmq's ``ThreadAuthenticator``).

The directory holds ``server.key`` / ``server.key_secret`` (the
coordinator's pair) and ``client.key`` / ``client.key_secret`` (the pair
front ends and tools use); copy it to every host that runs a role.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

SERVER = "server"
CLIENT = "client"


def generate_keys(directory: Path) -> None:
    """Make the server and client key pairs in ``directory`` (created mode 0700)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in (SERVER, CLIENT):
        zmq.auth.create_certificates(str(directory), name)
    for path in directory.glob("*.key_secret"):
        os.chmod(path, 0o600)


def secure_server(socket: zmq.Socket[Any], context: zmq.Context[Any], keys: Path) -> Any:
    """Make ``socket`` a CURVE server accepting only the keys in ``keys``; return the authenticator.

    Call before ``bind``; stop the returned authenticator after closing the socket.
    """
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(keys))
    public, secret = zmq.auth.load_certificate(str(keys / f"{SERVER}.key_secret"))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


def secure_client(socket: zmq.Socket[Any], keys: Path) -> None:
    """Make ``socket`` a CURVE client of the coordinator; call before ``connect``."""
    public, secret = zmq.auth.load_certificate(str(keys / f"{CLIENT}.key_secret"))
    server_public, _ = zmq.auth.load_certificate(str(keys / f"{SERVER}.key"))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public
