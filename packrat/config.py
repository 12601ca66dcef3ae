"""Settings: one dataclass, one loader, one place for every option.

The file is INI (``etc/packrat.ini``).  Every option has a default here; the
file overrides it.  Any unknown section or option, or a value that does not
parse, raises ``ConfigError`` whose text is one line naming the file, the
section, the option and what is wrong; the CLI prints it and exits with 2.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "PACKRAT_CONFIG"
DEFAULT_CONFIG = Path("etc/packrat.ini")
EXAMPLE_CONFIG = Path("etc/packrat.ini.example")

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ConfigError(Exception):
    """A configuration problem, worded for the operator (one line)."""


def parse_size(text: str) -> int:
    """Parse ``1048576``, ``512K``, ``64M``, ``1G``, ``2T`` (powers of 1024).

    >>> parse_size("1G")
    1073741824
    >>> parse_size("512")
    512
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (use bytes or a K/M/G/T suffix, e.g. 64M)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


@dataclass(frozen=True)
class Settings:
    """Every option of ``packrat.ini``; field names are ``section_option``."""

    server_host: str = "127.0.0.1"
    server_port: int = 5050
    frontend_processes: int = 2  # 0: one per CPU core
    frontend_touch_interval: float = 0.02  # seconds between batched TOUCH reports
    cache_root: Path = Path("var/cache")
    cache_max_size: int = 1 << 30  # bytes
    cache_max_file_size: int | None = None  # bytes; None means cache_max_size
    cache_policy: str = "lru"
    cache_low_water: float = 0.95  # evict down to this fraction of max_size
    coordinator_endpoint: str = "ipc://var/run/packrat-coordinator.sock"
    coordinator_timeout: float = 10.0  # seconds a front end waits for a reply
    coordinator_snapshot_interval: float = 60.0  # seconds between index snapshots
    coordinator_stale_staging: float = 3600.0  # seconds before an idle staging file is swept

    @property
    def max_file_size(self) -> int:
        """The largest upload accepted: never more than the cache itself."""
        if self.cache_max_file_size is None:
            return self.cache_max_size
        return min(self.cache_max_file_size, self.cache_max_size)

    @property
    def processes(self) -> int:
        return self.frontend_processes or (os.cpu_count() or 1)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} must not be negative")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"{text!r} is not a TCP port (0-65535)")
    return value


def _positive_size(text: str) -> int:
    value = parse_size(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be more than 0 bytes")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"{text!r} must be a positive number of seconds")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(f"{text!r} must be a fraction in (0, 1]")
    return value


def _policy(text: str) -> str:
    from packrat.policies import POLICIES

    if text not in POLICIES:
        raise ValueError(f"unknown policy {text!r} (choose from {', '.join(sorted(POLICIES))})")
    return text


def _endpoint(text: str) -> str:
    if not re.match(r"^(ipc|tcp)://.+", text):
        raise ValueError(f"{text!r} is not a ZeroMQ endpoint (ipc://PATH or tcp://HOST:PORT)")
    return text


# (section, option) -> parser of the text value; the field is f"{section}_{option}".
_OPTIONS = {
    ("server", "host"): str.strip,
    ("server", "port"): _port,
    ("frontend", "processes"): _positive_int,
    ("frontend", "touch_interval"): _seconds,
    ("cache", "root"): Path,
    ("cache", "max_size"): _positive_size,
    ("cache", "max_file_size"): _positive_size,
    ("cache", "policy"): _policy,
    ("cache", "low_water"): _fraction,
    ("coordinator", "endpoint"): _endpoint,
    ("coordinator", "timeout"): _seconds,
    ("coordinator", "snapshot_interval"): _seconds,
    ("coordinator", "stale_staging"): _seconds,
}


def find_config(explicit: str | None = None) -> Path:
    """The file to read: ``--config``, then ``$PACKRAT_CONFIG``, then
    ``etc/packrat.ini``, then the shipped ``etc/packrat.ini.example``."""
    chosen = explicit or os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else EXAMPLE_CONFIG


def load(path: Path) -> Settings:
    """Read ``path`` into ``Settings``; raise ``ConfigError`` on any problem."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read configuration: {e.strerror}") from None
    except configparser.Error as e:
        first_line = str(e).splitlines()[0]
        raise ConfigError(f"{path}: not a valid INI file: {first_line}") from None

    values: dict[str, object] = {}
    known_sections = {section for section, _ in _OPTIONS}
    for section in parser.sections():
        if section not in known_sections:
            raise ConfigError(f"{path}: [{section}]: unknown section")
        for option, text in parser.items(section):
            convert = _OPTIONS.get((section, option))
            if convert is None:
                raise ConfigError(f"{path}: [{section}] {option}: unknown option")
            try:
                values[f"{section}_{option}"] = convert(text)
            except ValueError as e:
                raise ConfigError(f"{path}: [{section}] {option} = {text}: {e}") from None
    settings = Settings(**values)
    if (
        settings.cache_max_file_size is not None
        and settings.cache_max_file_size > settings.cache_max_size
    ):
        raise ConfigError(
            f"{path}: [cache] max_file_size: {settings.cache_max_file_size} is larger than "
            f"max_size {settings.cache_max_size}"
        )
    return settings
