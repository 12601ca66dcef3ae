"""Configuration: defaults, sizes, file selection, and clear exits on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packrat.core import settings as config
from packrat.core.exits import ExitStatus
from tests.support.cli import packrat
from tests.support.waiting import wait_until

EXAMPLE = Path(__file__).parent.parent / "etc" / "packrat.ini.example"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("512", 512),
        ("1K", 1024),
        ("64M", 64 << 20),
        ("1G", 1 << 30),
        ("2T", 2 << 40),
        ("10k", 10240),
        ("3GiB", 3 << 30),
        ("1.5G", 3 << 29),
        ("1.1G", 1181116006),  # exact: 1.1 * 2**30 rounded down
        ("0.5 KiB", 512),
        ("10GB", 10 * 10**9),  # SI units mean powers of 1000
        ("2 TB", 2 * 10**12),
        ("7B", 7),
    ],
)
def test_parse_size(text, expected):
    assert config.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "1.5", "-1", "12Q", "G", "1 G B", "1Ki", "1e3", "\u00b2"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        config.parse_size(text)


def test_example_config_gives_documented_defaults():
    settings = config.load(EXAMPLE)
    assert settings.server_host == "127.0.0.1"
    assert settings.server_port == 5050
    assert settings.frontend_processes == 2
    assert settings.cache_root == Path("var/cache")
    assert settings.cache_max_size == 1 << 30
    assert settings.max_file_size == 1 << 30
    assert settings.coordinator_endpoint == "ipc://var/run/packrat-coordinator.sock"


def test_every_option_of_the_example_is_known_and_documented():
    text = EXAMPLE.read_text()
    for section, option in config._OPTIONS:
        assert f"[{section}]" in text
        assert f"\n{option} =" in text or f"\n; {option} =" in text, option


def test_max_file_size_defaults_to_max_size(tmp_path):
    path = tmp_path / "p.ini"
    path.write_text("[cache]\nmax_size = 10M\n")
    assert config.load(path).max_file_size == 10 << 20
    path.write_text("[cache]\nmax_size = 10M\nmax_file_size = 1M\n")
    assert config.load(path).max_file_size == 1 << 20


def test_processes_zero_means_one_per_core(tmp_path):
    path = tmp_path / "p.ini"
    path.write_text("[frontend]\nprocesses = 0\n")
    assert config.load(path).processes >= 1


def test_find_config_order(tmp_path, monkeypatch):
    """--config, then $PACKRAT_CONFIG, then ./etc/packrat.ini, then the system file, then none."""
    monkeypatch.chdir(tmp_path)
    system = tmp_path / "system" / "packrat.ini"
    monkeypatch.setattr(config, "SEARCH_PATH", (Path("etc/packrat.ini"), system))
    path, how = config.find_config()
    assert path is None and "built-in defaults" not in how and "etc/packrat.ini" in how
    system.parent.mkdir()
    system.write_text("")
    assert config.find_config() == (system, "found")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "packrat.ini").write_text("")
    assert config.find_config() == (Path("etc/packrat.ini"), "found")
    monkeypatch.setenv("PACKRAT_CONFIG", "/from/env.ini")
    assert config.find_config() == (Path("/from/env.ini"), "$PACKRAT_CONFIG")
    assert config.find_config("/explicit.ini") == (Path("/explicit.ini"), "--config")


def test_no_file_means_built_in_defaults():
    assert config.load(None) == config.Settings()


def test_the_example_documents_the_defaults_exactly():
    assert config.load(EXAMPLE) == config.Settings()


@given(st.integers(min_value=0, max_value=1 << 60))
def test_format_size_round_trips(size):
    assert config.parse_size(config.format_size(size)) == size


@pytest.mark.parametrize(
    "body",
    [
        "",
        "[server]\nport = 6000\n[cache]\nmax_size = 3000M\nmax_file_size = 12345\n"
        "low_water = 0.9\n[frontend]\ntouch_interval = 0.125\nidle_timeout = 7\n",
        "[auth]\nenabled = true\nwrite_users = alice bob\nanonymous_read = yes\n"
        "write_tokens = 0123456789abcdef0123456789abcdef\n",
    ],
)
def test_describe_loads_back_to_the_same_settings(tmp_path, body):
    """`packrat config > file` gives a file with the same settings (tokens excepted)."""
    path = tmp_path / "in.ini"
    path.write_text(body)
    text = config.describe(path, "--config")
    assert "0123456789abcdef" not in text  # tokens are never printed
    again = tmp_path / "again.ini"
    again.write_text(text)
    expected = config.load(path)
    if expected.auth_write_tokens:  # put the hidden tokens back
        hidden = "; write_tokens = (1 not shown)"
        assert hidden in text
        again.write_text(text.replace(hidden, f"write_tokens = {expected.auth_write_tokens[0]}"))
    assert config.load(again) == expected


def test_packrat_config_says_where_each_setting_came_from(tmp_path):
    (tmp_path / "etc").mkdir()
    local = tmp_path / "etc" / "packrat.ini"
    local.write_text("[server]\nport = 6001\n[auth]\nread_tokens = abcdefghijklmnopqrstuvwxyz\n")
    result = packrat("config", cwd=tmp_path, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "; configuration file: etc/packrat.ini (found)"
    assert "port = 6001  ; etc/packrat.ini" in lines
    assert "host = 127.0.0.1  ; default" in lines
    assert "max_size = 1G  ; default" in lines
    assert "; read_tokens = (1 not shown)  ; etc/packrat.ini" in lines
    assert "abcdefghijklmnopqrstuvwxyz" not in result.stdout

    other = tmp_path / "other.ini"
    other.write_text("[cache]\npolicy = lru\n")
    by_env = packrat("config", cwd=tmp_path, text=True, env={"PACKRAT_CONFIG": str(other)})
    assert by_env.stdout.splitlines()[0] == f"; configuration file: {other} ($PACKRAT_CONFIG)"
    assert f"policy = lru  ; {other}" in by_env.stdout
    assert "port = 5050  ; default" in by_env.stdout
    explicit = packrat("config", "--config", str(other), cwd=tmp_path, text=True)
    assert explicit.stdout.splitlines()[0] == f"; configuration file: {other} (--config)"

    other.write_text("[cache]\npolicy = nope\n")
    bad = packrat("config", "--config", str(other), cwd=tmp_path, text=True)
    assert bad.returncode == ExitStatus.CONFIG and "unknown policy 'nope'" in bad.stderr


@pytest.mark.skipif(
    any(p.is_absolute() and p.exists() for p in config.SEARCH_PATH),
    reason="this machine has a system-wide packrat.ini",
)
def test_runs_on_built_in_defaults_in_any_directory(tmp_path):
    """No file anywhere: `packrat config` says so, and a coordinator starts in an
    empty directory with the default (relative) cache root and endpoint.  (The
    front ends would bind the default port 5050, which tests never use.)"""
    result = packrat("config", cwd=tmp_path, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("; no configuration file (none of etc/packrat.ini")
    assert "built-in defaults" in result.stdout.splitlines()[0]
    log = tmp_path / "coordinator.log"
    with open(log, "wb") as out:
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "packrat", "coordinator"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        socket = tmp_path / "var" / "run" / "packrat-coordinator.sock"

        def bound() -> bool:
            assert coordinator.poll() is None, log.read_text()
            return socket.exists()

        wait_until(bound, 20, detail=log.read_text)
        assert (tmp_path / "var" / "cache" / "objects").is_dir()
    finally:
        coordinator.terminate()
        assert coordinator.wait(15) == 0, log.read_text()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[cache]\nmax_size = lots\n", "[cache] max_size = lots: 'lots' is not a size"),
        ("[cache]\nmax_sise = 1G\n", "[cache] max_sise: unknown option"),
        ("[cash]\nmax_size = 1G\n", "[cash]: unknown section"),
        ("[server]\nport = 70000\n", "[server] port = 70000: '70000' is not a TCP port number"),
        # 0 would have each front end bind a random port of its own
        ("[server]\nport = 0\n", "[server] port = 0: '0' is not a TCP port number (1 to 65535"),
        ("[server]\nport = http\n", "[server] port = http: 'http' is not a TCP port number"),
        ("[frontend]\nprocesses = two\n", "processes = two: 'two' is not a whole number"),
        ("[frontend]\nidle_timeout = soon\n", "idle_timeout = soon: 'soon' is not a number"),
        ("[cache]\nmax_size = 1.5\n", "'1.5' is not a size: use bytes, or a number and K"),
        ("[cache]\npolicy = random\n", "[cache] policy = random: unknown policy 'random'"),
        ("[cache]\nlow_water = 2\n", "[cache] low_water = 2: '2' must be a fraction"),
        ("[coordinator]\nendpoint = http://x\n", "[coordinator] endpoint = http://x: 'http://x'"),
        (
            "[cache]\nmax_size = 1M\nmax_file_size = 2M\n",
            "[cache] max_file_size: 2097152 is larger",
        ),
        ("no section header\n", "not a valid INI file"),
    ],
)
def test_bad_config_exits_2_with_one_clear_line(tmp_path, body, message):
    path = tmp_path / "bad.ini"
    path.write_text(body)
    result = packrat("serve", "--config", str(path), text=True)
    assert result.returncode == ExitStatus.CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"packrat: {path}: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_config(tmp_path):
    result = packrat("coordinator", "--config", str(tmp_path / "nope.ini"), text=True)
    assert result.returncode == ExitStatus.CONFIG
    assert "cannot read configuration" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[coordinator]\nendpoint = tcp://127.0.0.1:5555\n", "set curve_keys"),
        # The uploader's socket takes no keys: tcp:// is refused even with the coordinator's.
        (
            "[coordinator]\nendpoint = tcp://127.0.0.1:5555\ncurve_keys = {keys}\n"
            "[objectstore]\nbucket = ok-name\nuploader_endpoint = tcp://127.0.0.1:5556\n",
            "[objectstore] uploader_endpoint = tcp://127.0.0.1:5556: tcp://127.0.0.1:5556 is "
            "reachable by every local user",
        ),
    ],
)
def test_a_tcp_endpoint_without_curve_is_refused(tmp_path, body, message):
    """One rule (``endpoint_problem``) for both ZeroMQ sockets: whoever reaches one may delete."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("server.key", "server.key_secret", "client.key", "client.key_secret"):
        (keys / name).write_text("")
    path = tmp_path / "p.ini"
    path.write_text(body.format(keys=keys))
    with pytest.raises(config.ConfigError, match="every local user") as refused:
        config.load(path)
    assert message in str(refused.value)
    path.write_text(body.format(keys=keys).replace("tcp://127.0.0.1:5556", "ipc://x/u.sock"))
    if "uploader_endpoint" in body:
        assert config.load(path).objectstore_uploader_endpoint == "ipc://x/u.sock"
