"""The configurations in ``deploy/``, run for real on 127.0.0.1.

* ``deploy/supervisord.conf``: supervisord runs the coordinator and two front
  ends against a temporary cache root; uploads and downloads work, and
  ``supervisorctl stop all`` then ``shutdown`` leave no process behind.
* ``deploy/nginx-consistent-hash.conf`` and ``deploy/haproxy.cfg``: the load
  balancer, with loopback addresses put in for the example ones, in front of
  two independent ``packrat serve`` nodes (each its own root, port and
  coordinator); every key lands on exactly one node, always the same one, and
  ``/exists/<key>`` asks that node.

The load-balancer tests are skipped when nginx or haproxy is not installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from packrat.store import Layout

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SUPERVISORD = Path(sys.executable).parent / "supervisord"
SUPERVISORCTL = Path(sys.executable).parent / "supervisorctl"
TIMEOUT = 20.0


def wait_for(
    predicate,
    what: str,
    timeout: float = TIMEOUT,
    log: Path | None = None,
    process: subprocess.Popen | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            detail = log.read_text(errors="replace") if log and log.exists() else ""
            raise AssertionError(f"exited with {process.returncode} before {what}\n{detail}")
        with contextlib.suppress(requests.ConnectionError, OSError):
            if predicate():
                return
        time.sleep(0.05)
    detail = log.read_text(errors="replace") if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


def ready(url: str) -> bool:
    """HTTP answers and the status page shows the coordinator's numbers."""
    reply = requests.get(url + "/", timeout=1)
    return reply.status_code == 200 and "Objects" in reply.text


def refused(url: str) -> bool:
    try:
        requests.get(url + "/", timeout=1)
    except requests.ConnectionError:
        return True
    return False


def descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).children(recursive=True)
    return []


def kill_all(processes: list[psutil.Process]) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def user_directive() -> str:
    """As root, nginx/haproxy workers would otherwise run as nobody: keep our user."""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""


# -- supervisord -----------------------------------------------------------


def ctl(run: Path, env: dict[str, str], *command: str) -> str:
    done = subprocess.run(
        [str(SUPERVISORCTL), "-c", str(DEPLOY / "supervisord.conf"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done.stdout + done.stderr


def test_supervisord_group(config_for, free_tcp_port: int, tmp_path: Path) -> None:
    if not SUPERVISORD.exists():
        pytest.skip(f"supervisor is not installed in this environment ({SUPERVISORD})")
    packrat = DEPLOY.parent / ".venv" / "bin" / "packrat"
    if not packrat.exists():
        pytest.skip(f"deploy/supervisord.conf runs {packrat}, which does not exist")
    config = config_for(free_tcp_port)
    url = f"http://127.0.0.1:{free_tcp_port}"
    run = tmp_path / "supervisor"
    run.mkdir()
    env = {**os.environ, "PACKRAT_CONFIG": str(config), "PACKRAT_RUN": str(run)}
    log = run / "stdout.log"
    with open(log, "wb") as out:
        supervisord = subprocess.Popen(
            [str(SUPERVISORD), "-c", str(DEPLOY / "supervisord.conf")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[psutil.Process] = set()
    try:
        wait_for(
            lambda: ready(url),
            "packrat under supervisord",
            log=run / "supervisord.log",
            process=supervisord,
        )
        # RUNNING once each program has stayed up for startsecs.
        wait_for(lambda: ctl(run, env, "status").count("RUNNING") == 3, "three RUNNING programs")
        status = ctl(run, env, "status")
        assert "packrat:coordinator" in status and "packrat:frontend-1" in status, status
        children = descendants(supervisord.pid)
        seen.update(children)
        titles = " ".join(" ".join(p.cmdline()) for p in children)
        assert "coordinator" in titles and "frontend 1" in titles, titles

        data = os.urandom(300_000)
        reply = requests.post(f"{url}/deploy/obj", files={"file": ("o.bin", data)}, timeout=10)
        assert reply.status_code == 200, reply.text
        assert requests.get(f"{url}/deploy/obj", timeout=10).content == data
        assert requests.get(f"{url}/exists/deploy/obj", timeout=10).json() == {"present": True}

        # stop all: every program exits, supervisord stays.
        out = ctl(run, env, "stop", "all")
        assert "ERROR" not in out, out
        assert refused(url)
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"still running after stop all: {alive}"
        assert supervisord.poll() is None

        # start all again: the object survived the restart.
        out = ctl(run, env, "start", "all")
        assert "ERROR" not in out, out
        wait_for(lambda: ready(url), "packrat restarted", log=run / "supervisord.log")
        seen.update(descendants(supervisord.pid))
        assert requests.get(f"{url}/deploy/obj", timeout=10).content == data

        # shutdown: supervisord stops the programs and exits.
        ctl(run, env, "shutdown")
        assert supervisord.wait(TIMEOUT) == 0
        _, alive = psutil.wait_procs(list(seen), timeout=5)
        assert not alive, f"left behind by shutdown: {alive}"
        assert refused(url)
    finally:
        if supervisord.poll() is None:
            seen.update(descendants(supervisord.pid))
            supervisord.send_signal(signal.SIGTERM)
            try:
                supervisord.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                supervisord.kill()
                supervisord.wait()
        kill_all(list(seen))


# -- load balancers ---------------------------------------------------------

EXAMPLE_SERVER = re.compile(r"^(\s*server\s+\S*\s*)?10\.0\.0\.\d+:5050.*$", re.MULTILINE)


def with_nodes(text: str, lines: list[str]) -> str:
    """Put ``lines`` where the example node addresses are (10.0.0.x:5050)."""
    matches = list(EXAMPLE_SERVER.finditer(text))
    assert len(matches) >= 2, "the example node addresses in deploy/ changed; update the test"
    indent = re.match(r"\s*", matches[0].group(0)).group(0)
    start, end = matches[0].start(), matches[-1].end()
    return text[:start] + "\n".join(indent + line for line in lines) + text[end:]


def nginx_config(tmp: Path, port: int, nodes: list[int]) -> list[str]:
    text = (DEPLOY / "nginx-consistent-hash.conf").read_text()
    assert "listen 80;" in text, "the example listen address in deploy/ changed; update the test"
    text = text.replace("listen 80;", f"listen 127.0.0.1:{port};")
    text = with_nodes(text, [f"server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in nodes])
    (tmp / "packrat.conf").write_text(text)
    (tmp / "nginx.conf").write_text(
        f"{user_directive()}\n"
        f"pid {tmp}/nginx.pid;\n"
        "daemon off;\n"
        "worker_processes 1;\n"
        f"error_log {tmp}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {tmp}/client_body;\n"
        f"    proxy_temp_path {tmp}/proxy;\n"
        f"    fastcgi_temp_path {tmp}/fastcgi;\n"
        f"    uwsgi_temp_path {tmp}/uwsgi;\n"
        f"    scgi_temp_path {tmp}/scgi;\n"
        f"    include {tmp}/packrat.conf;\n"
        "}\n"
    )
    binary = nginx_binary()
    assert binary
    return [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]


def haproxy_config(tmp: Path, port: int, nodes: list[int]) -> list[str]:
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert "bind :80" in text, "the example bind address in deploy/ changed; update the test"
    text = text.replace("bind :80", f"bind 127.0.0.1:{port}")
    text = with_nodes(
        text,
        [f"server node{n} 127.0.0.1:{p} check inter 2s fall 2 rise 2" for n, p in enumerate(nodes)],
    )
    (tmp / "haproxy.cfg").write_text(text)
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return [binary, "-db", "-f", str(tmp / "haproxy.cfg")]


BALANCERS = {
    "nginx": (nginx_binary, nginx_config, signal.SIGQUIT),
    "haproxy": (
        lambda: shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy"),
        haproxy_config,
        signal.SIGTERM,
    ),
}


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_consistent_hash_balancer(
    balancer: str, make_server, tmp_path: Path, free_tcp_port: int
) -> None:
    find, configure, graceful = BALANCERS[balancer]
    if find() is None:
        pytest.skip(f"{balancer} is not installed (apt-get install {balancer})")
    # Two independent nodes: each its own cache root and coordinator endpoint.
    roots = [tmp_path / f"node{n}" for n in range(2)]
    nodes = [
        make_server(
            "serve",
            frontend={"processes": 1},
            cache={"root": root / "cache"},
            coordinator={"endpoint": f"ipc://{root}/run/coordinator.sock"},
        )
        for root in roots
    ]
    layouts = [Layout(root / "cache") for root in roots]
    lb_dir = tmp_path / balancer
    lb_dir.mkdir()
    argv = configure(lb_dir, free_tcp_port, [node.port for node in nodes])
    url = f"http://127.0.0.1:{free_tcp_port}"
    log = lb_dir / "stdout.log"
    with open(log, "wb") as out:
        lb = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: ready(url), f"{balancer} in front of two nodes", log=log, process=lb)
        keys = [f"shard/{n}/k{n * 7919 % 1000}" for n in range(24)]
        data = {key: os.urandom(1000 + n) for n, key in enumerate(keys)}
        home: dict[str, int] = {}
        for key in keys:
            reply = requests.post(f"{url}/{key}", files={"file": ("f", data[key])}, timeout=10)
            assert reply.status_code == 200, reply.text
            on_disk = [n for n, layout in enumerate(layouts) if layout.object_path(key).exists()]
            assert len(on_disk) == 1, f"{key} is on nodes {on_disk}"
            home[key] = on_disk[0]
        assert set(home.values()) == {0, 1}, f"all keys went to one node: {home}"

        for key in keys:
            node = nodes[home[key]]
            other = nodes[1 - home[key]]
            assert node.exists(key) and not other.exists(key), key
            # Reads and exists through the balancer reach the key's node.
            assert requests.get(f"{url}/{key}", timeout=10).content == data[key]
            reply = requests.get(f"{url}/exists/{key}", timeout=10)
            assert reply.json() == {"present": True}, (key, reply.text)

        # The same key always goes to the same node: overwrite, then read back.
        for key in keys[:6]:
            new = os.urandom(2000)
            reply = requests.post(f"{url}/{key}", files={"file": ("g", new)}, timeout=10)
            assert reply.status_code == 200, reply.text
            on_disk = [n for n, layout in enumerate(layouts) if layout.object_path(key).exists()]
            assert on_disk == [home[key]], key
            assert requests.get(f"{url}/{key}", timeout=10).content == new
        assert requests.get(f"{url}/exists/shard/never", timeout=10).json() == {"present": False}
    finally:
        lb_children = descendants(lb.pid)
        if lb.poll() is None:
            lb.send_signal(graceful)
            try:
                lb.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                lb.kill()
                lb.wait()
        _, alive = psutil.wait_procs(lb_children, timeout=5)
        kill_all(alive)
        assert not alive, f"{balancer} left processes behind: {alive}"
