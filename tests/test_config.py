"""Configuration: defaults, sizes, file selection, and clear exits on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from packrat import config

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
    ],
)
def test_parse_size(text, expected):
    assert config.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "1.5G", "-1", "12Q", "G", "1 G B"])
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
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    assert config.find_config() == Path("etc/packrat.ini.example")
    (tmp_path / "etc" / "packrat.ini").write_text("")
    assert config.find_config() == Path("etc/packrat.ini")
    monkeypatch.setenv("PACKRAT_CONFIG", "/from/env.ini")
    assert config.find_config() == Path("/from/env.ini")
    assert config.find_config("/explicit.ini") == Path("/explicit.ini")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[cache]\nmax_size = lots\n", "[cache] max_size = lots: 'lots' is not a size"),
        ("[cache]\nmax_sise = 1G\n", "[cache] max_sise: unknown option"),
        ("[cash]\nmax_size = 1G\n", "[cash]: unknown section"),
        ("[server]\nport = 70000\n", "[server] port = 70000: '70000' is not a TCP port"),
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
    result = subprocess.run(
        [sys.executable, "-m", "packrat", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"packrat: {path}: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "packrat", "coordinator", "--config", str(tmp_path / "nope.ini")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot read configuration" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
