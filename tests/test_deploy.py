"""The configurations in ``deploy/``, run for real on 127.0.0.1.

* ``deploy/supervisord.conf``: deploy/README.md's steps on a fresh copy of
  the checkout; supervisord runs the coordinator and two front ends, uploads
  and downloads work, and ``supervisorctl stop all`` then ``shutdown`` leave
  no process behind.
* ``deploy/systemd/``: ``systemd-analyze verify`` and ``security`` (skipped
  where systemd-analyze is not installed); ``deploy/Containerfile`` against
  the configuration it ships (no container engine here to build it).
* ``deploy/nginx-consistent-hash.conf`` and ``deploy/haproxy.cfg``: the load
  balancer, with loopback addresses put in for the example ones, in front of
  two independent ``packrat serve`` nodes (each its own root, port and
  coordinator); every key lands on exactly one node, always the same one, and
  ``/exists/<key>`` asks that node.

The load-balancer tests are skipped when nginx or haproxy is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from packrat.core.exits import FATAL
from packrat.store import Layout
from tests.support.waiting import refuses, shows_figures, wait_answering, wait_until

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SUPERVISORD = Path(sys.executable).parent / "supervisord"
TIMEOUT = 20.0


def log_of(path: Path):
    """What ``path`` holds when a wait fails (nothing if it was never written)."""
    return lambda: path.read_text(errors="replace") if path.exists() else ""


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

# deploy/README.md's steps, run in a fresh checkout (each must appear there as is).
SUPERVISOR_STEPS = [
    "mkdir -p var/run",
    ".venv/bin/supervisord -c deploy/supervisord.conf",
    ".venv/bin/supervisorctl -c deploy/supervisord.conf status",
]


def fresh_checkout(dest: Path) -> Path:
    """The files a fresh clone has (tracked ones, as in the work tree), at ``dest``.

    Its ``.venv`` is this test environment, standing in for the ``make
    .venv/.installed-run`` step (packrat and supervisor are installed in it).
    """
    listed = subprocess.run(
        ["git", "-C", str(DEPLOY.parent), "ls-files", "-z"],
        capture_output=True,
        timeout=TIMEOUT,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files a fresh clone has")
    for name in listed.stdout.decode().split("\0"):
        source = DEPLOY.parent / name
        if name and source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    return dest


def ctl(checkout: Path, *command: str) -> str:
    done = subprocess.run(
        [".venv/bin/supervisorctl", "-c", "deploy/supervisord.conf", *command],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done.stdout + done.stderr


def test_supervisord_group_on_a_fresh_checkout(free_tcp_port: int, tmp_path: Path) -> None:
    """deploy/README.md's supervisord steps, as written, on a fresh clone.

    The one change is the documented way to change settings: etc/packrat.ini,
    copied from the example, with a free port instead of 5050.
    """
    if not SUPERVISORD.exists() or not (Path(sys.prefix) / "bin" / "packrat").exists():
        pytest.skip(f"supervisor or packrat is not installed in {sys.prefix}")
    readme = (DEPLOY / "README.md").read_text()
    for step in SUPERVISOR_STEPS:
        assert step in readme, f"deploy/README.md no longer says {step!r}; update the test"
    checkout = fresh_checkout(tmp_path / "clone")
    assert not (checkout / "etc" / "packrat.ini").exists()
    example = (checkout / "etc" / "packrat.ini.example").read_text()
    assert "\nport = 5050\n" in example
    (checkout / "etc" / "packrat.ini").write_text(
        example.replace("\nport = 5050\n", f"\nport = {free_tcp_port}\n")
    )
    url = f"http://127.0.0.1:{free_tcp_port}"
    (checkout / "var" / "run").mkdir(parents=True)  # mkdir -p var/run
    run = checkout / "var" / "run"
    with open(tmp_path / "stdout.log", "wb") as out:
        supervisord = subprocess.Popen(
            SUPERVISOR_STEPS[1].split(),
            cwd=checkout,
            env={k: v for k, v in os.environ.items() if not k.startswith("PACKRAT_")},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[psutil.Process] = set()
    try:
        wait_answering(
            url + "/", shows_figures, TIMEOUT, supervisord, log_of(run / "supervisord.log")
        )
        # RUNNING once each program has stayed up for startsecs.
        wait_until(lambda: ctl(checkout, "status").count("RUNNING") == 3, TIMEOUT, what="3 RUNNING")
        status = ctl(checkout, "status")
        assert "packrat:coordinator" in status and "packrat:frontend-1" in status, status
        children = descendants(supervisord.pid)
        seen.update(children)
        titles = " ".join(" ".join(p.cmdline()) for p in children)
        assert "coordinator" in titles and "frontend 1" in titles, titles
        # Everything the group writes is inside the checkout.
        assert (checkout / "var" / "cache" / "objects").is_dir()
        assert (run / "coordinator.log").exists() and (run / "frontend-0.log").exists()

        data = os.urandom(300_000)
        reply = requests.post(f"{url}/deploy/obj", files={"file": ("o.bin", data)}, timeout=10)
        assert reply.status_code == 200, reply.text
        assert requests.get(f"{url}/deploy/obj", timeout=10).content == data
        assert requests.get(f"{url}/exists/deploy/obj", timeout=10).json() == {"present": True}

        # stop all: every program exits, supervisord stays.
        out = ctl(checkout, "stop", "all")
        assert "ERROR" not in out, out
        assert refuses(url)
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"still running after stop all: {alive}"
        assert supervisord.poll() is None

        # start all again: the object survived the restart.
        out = ctl(checkout, "start", "all")
        assert "ERROR" not in out, out
        wait_answering(url + "/", shows_figures, TIMEOUT, log=log_of(run / "supervisord.log"))
        seen.update(descendants(supervisord.pid))
        assert requests.get(f"{url}/deploy/obj", timeout=10).content == data

        # shutdown: supervisord stops the programs and exits.
        ctl(checkout, "shutdown")
        assert supervisord.wait(TIMEOUT) == 0
        _, alive = psutil.wait_procs(list(seen), timeout=5)
        assert not alive, f"left behind by shutdown: {alive}"
        assert refuses(url)
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


# -- systemd and the container ----------------------------------------------

UNITS = [
    "packrat-coordinator.service",
    "packrat-frontend@.service",
    "packrat-uploader.service",
    "packrat.target",
]


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """deploy/systemd/ with ExecStart pointing at this environment's packrat
    (systemd-analyze verify checks that the command exists)."""
    packrat = Path(sys.prefix) / "bin" / "packrat"
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/opt/packrat/bin/packrat", str(packrat)))
    return tmp_path


def systemd_analyze(units: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed")
    return subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
    )


def test_systemd_units_verify_cleanly(units: Path) -> None:
    """No error and no warning (an unknown or misspelt key is only a warning)."""
    result = systemd_analyze(
        units,
        "verify",
        str(units / "packrat-coordinator.service"),
        str(units / "packrat-frontend@0.service"),
        str(units / "packrat-uploader.service"),
        str(units / "packrat.target"),
    )
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stderr


@pytest.mark.parametrize(
    "unit",
    ["packrat-coordinator.service", "packrat-frontend@0.service", "packrat-uploader.service"],
)
def test_systemd_units_are_sandboxed(units: Path, unit: str) -> None:
    """`systemd-analyze security` rates each service's exposure 2.0 or less of 10."""
    result = systemd_analyze(
        units, "security", "--offline=yes", "--threshold=20", str(units / unit)
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    text = (DEPLOY / "systemd" / unit.replace("@0", "@")).read_text()
    for setting in ("LimitNOFILE=", "ProtectSystem=strict", "StateDirectory=packrat"):
        assert setting in text, setting


def capability_checks(units: Path) -> dict[str, bool]:
    """``systemd-analyze security``'s capability checks of front end 0: name -> safe."""
    result = systemd_analyze(
        units,
        "security",
        "--offline=yes",
        "--json=short",
        str(units / "packrat-frontend@0.service"),
    )
    return {
        check["name"]: check["set"]
        for check in json.loads(result.stdout)
        if check["name"].startswith(("CapabilityBoundingSet=", "AmbientCapabilities="))
    }


def test_the_low_port_drop_in_grants_binding_and_nothing_else(units: Path) -> None:
    """Installed as README says, the drop-in gives the front ends CAP_NET_BIND_SERVICE
    (the unit's own empty CapabilityBoundingSet= used to reset it), and keeps the
    sandbox's rating."""
    bind = "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)"
    sandboxed = capability_checks(units)
    assert sandboxed[bind] is True  # no capability without the drop-in
    drop_ins = units / "packrat-frontend@.service.d"
    drop_ins.mkdir()
    shutil.copy(DEPLOY / "systemd" / "low-port.conf", drop_ins)
    granted = capability_checks(units)
    assert granted[bind] is False  # the front end may bind a low port
    changed = {name for name in granted if granted[name] != sandboxed[name]}
    assert changed <= {bind, "AmbientCapabilities="}, changed
    result = systemd_analyze(
        units,
        "security",
        "--offline=yes",
        "--threshold=20",
        str(units / "packrat-frontend@0.service"),
    )
    assert result.returncode == 0, result.stdout[-2000:]
    readme = (DEPLOY / "README.md").read_text()
    assert "/etc/systemd/system/packrat-frontend@.service.d/low-port.conf" in readme
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" not in (
        DEPLOY / "systemd" / "packrat-frontend@.service"
    ).read_text().replace("# ", "")


def test_systemd_units_run_packrat_as_documented() -> None:
    coordinator = (DEPLOY / "systemd" / "packrat-coordinator.service").read_text()
    frontend = (DEPLOY / "systemd" / "packrat-frontend@.service").read_text()
    target = (DEPLOY / "systemd" / "packrat.target").read_text()
    assert "ExecStart=/opt/packrat/bin/packrat coordinator\n" in coordinator
    assert "ExecStart=/opt/packrat/bin/packrat frontend --number %i\n" in frontend
    assert "After=packrat-coordinator.service" in frontend  # stopped before it
    never_restarted = "RestartPreventExitStatus=" + " ".join(str(s) for s in sorted(FATAL))
    assert f"\n{never_restarted}\n" in coordinator and f"\n{never_restarted}\n" in frontend
    assert "packrat-coordinator.service packrat-frontend@0.service" in target
    uploader = (DEPLOY / "systemd" / "packrat-uploader.service").read_text()
    assert "ExecStart=/opt/packrat/bin/packrat uploader\n" in uploader
    assert f"\n{never_restarted}\n" in uploader
    readme = (DEPLOY / "README.md").read_text()
    for name in UNITS:
        assert f"systemd/{name}" in readme, name


def test_container_file_runs_serve_as_a_user_with_the_cache_on_a_volume() -> None:
    """The Containerfile cannot be built here (no container engine): check what it
    says against the configuration it ships, which must load."""
    from packrat.core import settings as config

    containerfile = (DEPLOY / "Containerfile").read_text()
    settings = config.load(DEPLOY / "container.ini")
    assert settings.server_host == "0.0.0.0"
    assert f"VOLUME {settings.cache_root}\n" in containerfile
    assert f"EXPOSE {settings.server_port}\n" in containerfile
    assert "COPY deploy/container.ini /etc/packrat/packrat.ini\n" in containerfile
    assert "\nUSER packrat\n" in containerfile
    assert containerfile.rstrip().endswith('CMD ["packrat", "serve"]')
    assert "Containerfile" in (DEPLOY / "README.md").read_text()


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
        wait_answering(url + "/", shows_figures, TIMEOUT, lb, log_of(log))
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
