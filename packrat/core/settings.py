"""Settings: one dataclass, one loader, one place for every option.

The file is INI (``etc/packrat.ini``).  Every option has a default here, so
Packrat runs with no file at all; a file overrides what it sets.  Any unknown
section or option, or a value that does not parse, raises ``ConfigError``
whose text is one line naming the file, the section, the option and what is
wrong; the CLI prints it and exits with ``ExitStatus.CONFIG`` (78).
"""

from __future__ import annotations

import configparser
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packrat.core.numbers import whole_number
from packrat.core.origins import normalize_origin

ENV_VAR = "PACKRAT_CONFIG"
# Looked for in this order when neither --config nor $PACKRAT_CONFIG names a file.
SEARCH_PATH = (Path("etc/packrat.ini"), Path("/etc/packrat/packrat.ini"))

# A number, then a unit: K M G T or KiB MiB GiB TiB (powers of 1024, as nginx
# and bazel-remote count), KB MB GB TB (powers of 1000, as disks are sold), B.
_SIZE_RE = re.compile(
    r"\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?:(?P<prefix>[KMGT])(?P<kind>iB|B)?|B)?\s*",
    re.IGNORECASE,
)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SI_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_NOT_A_SIZE = (
    "is not a size: use bytes, or a number and K, M, G, T (powers of 1024; also KiB...) "
    "or KB, MB, GB, TB (powers of 1000), e.g. 64M or 1.5G"
)


class ConfigError(Exception):
    """A configuration problem, worded for the operator (one line)."""


def parse_size(text: str) -> int:
    """Bytes in ``1048576``, ``512K``, ``64M``, ``1.5G``, ``2TiB`` (powers of 1024) or
    ``10GB`` (powers of 1000), rounded down to a whole byte.

    >>> parse_size("1G"), parse_size("512"), parse_size("1.5K"), parse_size("10GB")
    (1073741824, 512, 1536, 10000000000)
    """
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} {_NOT_A_SIZE}")
    number, prefix = match["number"], (match["prefix"] or "").upper()
    if "." in number and not prefix:
        raise ValueError(f"{text!r} {_NOT_A_SIZE} (a fraction needs a unit)")
    unit = _SI_UNITS[prefix] if (match["kind"] or "").upper() == "B" else _UNITS[prefix]
    whole, _, fraction = number.partition(".")
    # Exact arithmetic: 1.1G is 1181116006 bytes, not a float's neighbour.
    return (int(whole + fraction) * unit) // 10 ** len(fraction)


@dataclass(frozen=True)
class Settings:
    """Every option of ``packrat.ini``; field names are ``section_option``."""

    server_host: str = "127.0.0.1"
    server_port: int = 5050
    server_certfile: Path | None = None  # PEM certificate chain: serve HTTPS
    server_keyfile: Path | None = None  # PEM private key (None: in certfile)
    frontend_processes: int = 2  # 0: one per CPU core
    frontend_touch_interval: float = 0.02  # seconds between batched TOUCH reports
    frontend_idle_timeout: float = 60.0  # seconds for request headers / idle keep-alive / a send
    frontend_body_timeout: float = 3600.0  # seconds to receive one whole request body
    frontend_max_header_size: int = 64 << 10  # bytes of request line plus headers
    frontend_max_uploads: int = 64  # concurrent uploads per front end; 0: no limit
    frontend_cache_max_age: int = 0  # seconds shared caches may serve an object unchecked
    frontend_memory_cache: int = 32 << 20  # bytes of small objects kept in memory; 0: none
    # origins (scheme://host[:port]) whose pages may write, besides this server's own
    frontend_allowed_origins: tuple[str, ...] = ()
    auth_enabled: bool = False  # the one switch: require credentials
    auth_read_tokens: tuple[str, ...] = ()  # bearer tokens that may read
    auth_write_tokens: tuple[str, ...] = ()  # bearer tokens that may read and write
    auth_list_tokens: tuple[str, ...] = ()  # bearer tokens that may read and list key names
    auth_htpasswd: Path | None = None  # user:hash lines (bcrypt, sha-crypt) for HTTP Basic
    auth_write_users: tuple[str, ...] = ("*",)  # htpasswd users that may write; * = all
    auth_list_users: tuple[str, ...] = ()  # htpasswd users that may list key names; * = all
    auth_anonymous_read: bool = False  # reads need no credentials (writes still do)
    cache_root: Path = Path("var/cache")
    cache_max_size: int = 1 << 30  # bytes
    cache_max_file_size: int | None = None  # bytes; None means cache_max_size
    cache_policy: str = "s3gdsf"  # eviction policy; see docs/policies.md
    cache_low_water: float = 0.95  # evict down to this fraction of max_size
    # ac/ entries must name blobs stored in the cas/ beside them (docs/build-tools.md)
    bazel_check_action_results: bool = True
    coordinator_endpoint: str = "ipc://var/run/packrat-coordinator.sock"
    coordinator_timeout: float = 10.0  # seconds a front end waits for a reply
    coordinator_snapshot_interval: float = 60.0  # seconds between index snapshots
    coordinator_stale_staging: float = 3600.0  # seconds before an idle staging file is swept
    coordinator_curve_keys: Path | None = None  # CURVE certificates (packrat keygen) for tcp://
    log_format: str = "text"  # text: one readable line per event; json: one JSON object each
    log_level: str = "info"  # debug, info, warning or error (the access log has its own switch)
    log_access: bool = True  # one line per HTTP request
    metrics_public: bool = False  # GET /metrics without credentials when [auth] is on
    metrics_directory: Path = Path("var/run/packrat-metrics")  # shared by the processes
    # [objectstore]: an S3-compatible store behind the cache, off while bucket is unset
    # (docs/objectstore.md).  No secret is ever a setting: credentials come from the
    # environment, credentials_file, or the platform (an instance role).
    objectstore_bucket: str | None = None
    objectstore_endpoint_url: str | None = None  # None: AWS S3 for the region
    objectstore_prefix: str = ""  # prepended to every key in the bucket
    objectstore_region: str = "us-east-1"
    objectstore_addressing_style: str = "auto"  # auto, path or virtual (bucket.host)
    objectstore_credentials_file: Path | None = None  # AWS shared-credentials format
    objectstore_profile: str | None = None  # the section of credentials_file to use
    objectstore_connect_timeout: float = 2.0  # seconds to connect to the store
    objectstore_read_timeout: float = 5.0  # seconds a store request may wait for bytes
    objectstore_upload_checksum: bool = True  # the store checks each upload's sha256
    objectstore_concurrency: int = 4  # uploads under way at once
    objectstore_max_backlog: int = 100_000  # objects the uploader tracks in memory
    objectstore_uploader_endpoint: str = "ipc://var/run/packrat-uploader.sock"

    @property
    def objectstore_enabled(self) -> bool:
        return self.objectstore_bucket is not None

    @property
    def max_file_size(self) -> int:
        """The largest upload accepted: never more than the cache itself."""
        if self.cache_max_file_size is None:
            return self.cache_max_size
        return min(self.cache_max_file_size, self.cache_max_size)

    @property
    def processes(self) -> int:
        return self.frontend_processes or (os.cpu_count() or 1)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server TLS context when ``[server] certfile`` is set, else None."""
        if self.server_certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_certfile, self.server_keyfile)
        return context


def _whole_number(text: str) -> int:
    value = whole_number(text.strip())
    if value is None:
        raise ValueError(f"{text!r} is not a whole number")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _non_negative_int(text: str) -> int:
    return _whole_number(text)


def _port(text: str) -> int:
    """A TCP port to listen on.  Not 0: each front end would bind a random port of its own."""
    value = whole_number(text.strip())
    if value is None or not 1 <= value <= 65535:
        raise ValueError(f"{text!r} is not a TCP port number (1 to 65535; 80 for http)")
    return value


def _positive_size(text: str) -> int:
    value = parse_size(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be more than 0 bytes")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise ValueError(f"{text!r} must be a positive number of seconds")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0 < value <= 1:
        raise ValueError(f"{text!r} must be a fraction in (0, 1]")
    return value


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false, yes/no, on/off, 1/0)")


def _words(text: str) -> tuple[str, ...]:
    """Whitespace- or comma-separated words."""
    return tuple(word for word in re.split(r"[\s,]+", text) if word)


def _origins(text: str) -> tuple[str, ...]:
    """Origins, normalized: ``scheme://host[:port]``, nothing after but one ``/``."""
    origins = []
    for word in _words(text):
        origin = normalize_origin(word.removesuffix("/"))
        if origin is None:
            raise ValueError(f"{word!r} is not an origin (scheme://host[:port], nothing after)")
        origins.append(origin)
    return tuple(origins)


def _tokens(text: str) -> tuple[str, ...]:
    tokens = _words(text)
    for token in tokens:
        if len(token) < 16 or not re.fullmatch(r"[A-Za-z0-9._~+/=-]+", token):
            raise ValueError(
                "each token must be at least 16 characters of letters, digits and ._~+/=-"
            )
    return tokens


def _readable_file(text: str) -> Path:
    path = Path(text.strip())
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ValueError(f"{text.strip()!r} is not a readable file")
    return path


def _htpasswd(text: str) -> Path:
    from packrat.core.htpasswd import load_htpasswd  # bcrypt and passlib: only when used

    path = _readable_file(text)
    load_htpasswd(path)  # raises ValueError naming the bad line
    return path


def _policy(text: str) -> str:
    from packrat.policies import POLICIES

    if text not in POLICIES:
        raise ValueError(f"unknown policy {text!r} (choose from {', '.join(sorted(POLICIES))})")
    return text


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _endpoint(text: str) -> str:
    if not re.match(r"^(ipc|tcp)://.+", text):
        raise ValueError(f"{text!r} is not a ZeroMQ endpoint (ipc://PATH or tcp://HOST:PORT)")
    return text


def endpoint_problem(endpoint: str, keys: Path | None, curve: bool = True) -> str | None:
    """Why ``endpoint`` may not be served with ``keys`` (None: it may).

    The one rule for every ZeroMQ socket Packrat serves (the coordinator's,
    the uploader's): a ``tcp://`` endpoint needs CURVE keys.  On a loopback
    address every local user reaches it, on any other address other hosts
    do, and anyone who reaches it can delete objects, HTTP auth or not.  A
    socket that takes no keys (``curve=False``: the uploader's) is ``ipc://``
    only.

    >>> endpoint_problem("ipc:///run/p.sock", None) is None
    True
    >>> endpoint_problem("tcp://127.0.0.1:5555", Path("keys")) is None
    True
    >>> "every local user" in endpoint_problem("tcp://127.0.0.1:5555", None)
    True
    >>> "no CURVE keys" in endpoint_problem("tcp://127.0.0.1:5555", Path("keys"), curve=False)
    True
    """
    if endpoint.startswith("ipc://") or (curve and keys is not None):
        return None
    remedy = "set curve_keys (packrat keygen DIR)" if curve else "this socket takes no CURVE keys"
    return (
        f"{endpoint} is reachable by every local user (and from other hosts unless it is a "
        f"loopback address), and anyone who reaches it can delete objects; use ipc:// "
        f"({remedy})"
    )


def _bucket(text: str) -> str:
    """An S3 bucket name (the rules every S3-compatible store accepts)."""
    name = text.strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name):
        raise ValueError(
            f"{name!r} is not a bucket name (3-63 lowercase letters, digits, '.' and '-')"
        )
    return name


def _url(text: str) -> str:
    url = text.strip()
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


def _prefix(text: str) -> str:
    """A key prefix: keys' characters, usually ending with '/'."""
    prefix = text.strip()
    if prefix and not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+,;=:@/-]+", prefix):
        raise ValueError(f"{prefix!r} may hold only the characters keys may")
    return prefix


def _count_at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{text!r} must be at least 1")
    return value


def _keyless_endpoint(text: str) -> str:
    """An endpoint for a socket without CURVE keys (the uploader's): ``ipc://`` only."""
    endpoint = _endpoint(text)
    problem = endpoint_problem(endpoint, None, curve=False)
    if problem:
        raise ValueError(problem)
    return endpoint


def _curve_keys(text: str) -> Path:
    path = Path(text.strip())
    names = ("server.key", "server.key_secret", "client.key", "client.key_secret")
    missing = [name for name in names if not (path / name).is_file()]
    if missing:
        raise ValueError(
            f"{text.strip()!r} lacks {', '.join(missing)} (make them with: packrat keygen DIR)"
        )
    return path


# (section, option) -> parser of the text value; the field is f"{section}_{option}".
_OPTIONS = {
    ("server", "host"): str.strip,
    ("server", "port"): _port,
    ("server", "certfile"): _readable_file,
    ("server", "keyfile"): _readable_file,
    ("frontend", "processes"): _non_negative_int,
    ("frontend", "touch_interval"): _seconds,
    ("frontend", "idle_timeout"): _seconds,
    ("frontend", "body_timeout"): _seconds,
    ("frontend", "max_header_size"): _positive_size,
    ("frontend", "max_uploads"): _non_negative_int,
    ("frontend", "cache_max_age"): _non_negative_int,
    ("frontend", "memory_cache"): parse_size,
    ("frontend", "allowed_origins"): _origins,
    ("auth", "enabled"): _bool,
    ("auth", "read_tokens"): _tokens,
    ("auth", "write_tokens"): _tokens,
    ("auth", "list_tokens"): _tokens,
    ("auth", "htpasswd"): _htpasswd,
    ("auth", "write_users"): _words,
    ("auth", "list_users"): _words,
    ("auth", "anonymous_read"): _bool,
    ("cache", "root"): Path,
    ("cache", "max_size"): _positive_size,
    ("cache", "max_file_size"): _positive_size,
    ("cache", "policy"): _policy,
    ("cache", "low_water"): _fraction,
    ("bazel", "check_action_results"): _bool,
    ("coordinator", "endpoint"): _endpoint,
    ("coordinator", "timeout"): _seconds,
    ("coordinator", "snapshot_interval"): _seconds,
    ("coordinator", "stale_staging"): _seconds,
    ("coordinator", "curve_keys"): _curve_keys,
    ("log", "format"): _choice("text", "json"),
    ("log", "level"): _choice("debug", "info", "warning", "error"),
    ("log", "access"): _bool,
    ("metrics", "public"): _bool,
    ("metrics", "directory"): Path,
    ("objectstore", "bucket"): _bucket,
    ("objectstore", "endpoint_url"): _url,
    ("objectstore", "prefix"): _prefix,
    ("objectstore", "region"): str.strip,
    ("objectstore", "addressing_style"): _choice("auto", "path", "virtual"),
    ("objectstore", "credentials_file"): _readable_file,
    ("objectstore", "profile"): str.strip,
    ("objectstore", "connect_timeout"): _seconds,
    ("objectstore", "read_timeout"): _seconds,
    ("objectstore", "upload_checksum"): _bool,
    ("objectstore", "concurrency"): _count_at_least_one,
    ("objectstore", "max_backlog"): _count_at_least_one,
    ("objectstore", "uploader_endpoint"): _keyless_endpoint,
}


def find_config(explicit: str | None = None) -> tuple[Path | None, str]:
    """The file to read and why: ``--config``, then ``$PACKRAT_CONFIG``, then
    the first of ``SEARCH_PATH`` that exists; ``None`` means built-in defaults.

    A file named by ``--config`` or the variable must exist (``load`` says so
    if it does not); the search path's files are optional.
    """
    if explicit:
        return Path(explicit), "--config"
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env), f"${ENV_VAR}"
    for candidate in SEARCH_PATH:
        if candidate.is_file():
            return candidate, "found"
    searched = ", ".join(str(candidate) for candidate in SEARCH_PATH)
    return None, f"none of {searched} exists"


def read_file(path: Path) -> dict[str, object]:
    """The options ``path`` sets, parsed, by field name; ``ConfigError`` on any problem."""
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
    return values


def load(path: Path | None) -> Settings:
    """Read ``path`` into ``Settings`` (``None``: the defaults); ``ConfigError`` on any problem."""
    values = read_file(path) if path is not None else {}
    settings = Settings(**values)
    if (
        settings.cache_max_file_size is not None
        and settings.cache_max_file_size > settings.cache_max_size
    ):
        raise ConfigError(
            f"{path}: [cache] max_file_size: {settings.cache_max_file_size} is larger than "
            f"max_size {settings.cache_max_size}"
        )
    if settings.server_keyfile is not None and settings.server_certfile is None:
        raise ConfigError(f"{path}: [server] keyfile: set certfile too (or neither)")
    try:
        settings.ssl_context()
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{path}: [server] certfile: cannot load the certificate: {e}") from None
    problem = endpoint_problem(settings.coordinator_endpoint, settings.coordinator_curve_keys)
    if problem:
        raise ConfigError(f"{path}: [coordinator] endpoint: {problem}")
    if settings.auth_enabled and not (
        settings.auth_read_tokens
        or settings.auth_write_tokens
        or settings.auth_list_tokens
        or settings.auth_htpasswd
    ):
        raise ConfigError(
            f"{path}: [auth] enabled: no read_tokens, write_tokens, list_tokens or htpasswd "
            "to check against"
        )
    if settings.objectstore_enabled:
        from packrat.core.objectstore_settings import check_settings

        try:
            check_settings(settings)
        except ValueError as e:
            raise ConfigError(f"{path}: [objectstore] {e}") from None
    return settings


# Options whose values ``describe`` never prints.
_SECRETS = {("auth", "read_tokens"), ("auth", "write_tokens"), ("auth", "list_tokens")}


def format_size(size: int) -> str:
    """The shortest exact text ``parse_size`` reads back.

    >>> format_size(1 << 30), format_size(65536), format_size(1000)
    ('1G', '64K', '1000')
    """
    for unit in "TGMK":
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def format_value(section: str, option: str, value: object) -> str | None:
    """``value`` as the file would write it; ``None`` when the option is not set."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return " ".join(value)
    if isinstance(value, int) and _OPTIONS[(section, option)] is _positive_size:
        return format_size(value)
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    return str(value)


def describe(path: Path | None, how: str) -> str:
    """The effective settings as INI text, each option with where its value came from.

    What ``packrat config`` prints.  The text loads back to the same settings,
    except that tokens are not shown.  Raises ``ConfigError`` like ``load``.
    """
    settings = load(path)
    from_file = read_file(path) if path is not None else {}
    if path is None:
        lines = [f"; no configuration file ({how}): built-in defaults"]
    else:
        lines = [f"; configuration file: {path} ({how})"]
    lines.append(f"; relative paths are relative to the current directory, {Path.cwd()}")
    current = ""
    for section, option in _OPTIONS:
        if section != current:
            lines += ["", f"[{section}]"]
            current = section
        field = f"{section}_{option}"
        value = getattr(settings, field)
        source = str(path) if field in from_file else "default"
        text = format_value(section, option, value)
        if (section, option) in _SECRETS and value:
            lines.append(f"; {option} = ({len(value)} not shown)  ; {source}")
        elif text is None:
            lines.append(f"; {option} =  ; not set, {source}")
        else:
            lines.append(f"{option} = {text}  ; {source}")
    if settings.objectstore_enabled:
        from packrat.core.objectstore_settings import describe_credentials

        lines.append(f"; credentials: {describe_credentials(settings)}")
    return "\n".join(lines) + "\n"
