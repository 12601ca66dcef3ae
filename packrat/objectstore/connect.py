"""Reaching the store: the boto3 client from ``[objectstore]``, and where credentials come from.

Credentials are never a setting.  With ``credentials_file`` they are read
from that file (the AWS shared-credentials format: a ``[default]`` or
``[<profile>]`` section with ``aws_access_key_id`` and
``aws_secret_access_key``, and ``aws_session_token`` for temporary ones);
without it, boto3's own chain finds them: ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` in the environment, ``~/.aws/credentials``
(``profile`` picks a section), a container or instance role.  The secret is
never logged and never printed: ``describe_credentials`` names the source and
shows the access key id cut short.  botocore's own loggers are held at
``warning``: at ``debug`` they would print signed request headers.
"""

from __future__ import annotations

import configparser
import logging
import os
from pathlib import Path
from typing import Any

from packrat import __version__
from packrat.config import Settings

for _name in ("botocore", "boto3", "s3transfer", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# boto3's own retries: none.  Its back-off would hold a miss for up to a second
# for each failure; a failed read is a miss, a failed upload waits its turn again,
# and the breaker and the uploader's back-off handle outages.
MAX_ATTEMPTS = 1


def read_credentials_file(path: Path, profile: str | None) -> dict[str, str]:
    """The keys of ``profile`` (default ``default``) in an AWS credentials file.

    ``ValueError`` names what is missing, never a value.
    """
    section = profile or "default"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise ValueError(f"credentials_file: cannot read {path}: {e.strerror}") from None
    except configparser.Error:
        raise ValueError(f"credentials_file: {path} is not an INI file") from None
    if not parser.has_section(section):
        raise ValueError(f"credentials_file: {path} has no [{section}] section")
    values = dict(parser.items(section))
    missing = [
        name for name in ("aws_access_key_id", "aws_secret_access_key") if not values.get(name)
    ]
    if missing:
        raise ValueError(f"credentials_file: [{section}] of {path} lacks {' and '.join(missing)}")
    return {
        name: values[name].strip()
        for name in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
        if values.get(name)
    }


def check_settings(settings: Settings) -> None:
    """``ValueError`` (worded for the operator) when the store cannot be used as set."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise ValueError(
            "bucket: boto3 is not installed (pip install 'packrat-cache[s3]')"
        ) from None
    try:
        import inotify_simple  # noqa: F401
    except ImportError:
        raise ValueError(
            "bucket: inotify_simple is not installed (pip install 'packrat-cache[s3]')"
        ) from None
    if settings.objectstore_credentials_file is not None:
        read_credentials_file(settings.objectstore_credentials_file, settings.objectstore_profile)
    if (
        settings.objectstore_addressing_style == "virtual"
        and settings.objectstore_bucket is not None
        and "." in settings.objectstore_bucket
        and (settings.objectstore_endpoint_url or "https").startswith("https")
    ):
        raise ValueError(
            "addressing_style: a bucket name with dots cannot be reached over HTTPS as a "
            "virtual host (its certificate does not match); use addressing_style = path"
        )


def _shorten(access_key_id: str) -> str:
    """An access key id cut short enough to recognise and not to use.

    >>> _shorten("AKIAIOSFODNN7EXAMPLE")
    'AKIA...MPLE'
    """
    if len(access_key_id) <= 8:
        return "..."
    return f"{access_key_id[:4]}...{access_key_id[-4:]}"


def describe_credentials(settings: Settings) -> str:
    """Where the credentials come from, for ``packrat config`` (no secret in it)."""
    path = settings.objectstore_credentials_file
    if path is not None:
        try:
            keys = read_credentials_file(path, settings.objectstore_profile)
        except ValueError as e:
            return str(e)
        section = settings.objectstore_profile or "default"
        return (
            f"[{section}] of {path}, access key id {_shorten(keys['aws_access_key_id'])} "
            "(the secret is not shown)"
        )
    key_id = os.environ.get("AWS_ACCESS_KEY_ID")
    if key_id and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return (
            f"$AWS_ACCESS_KEY_ID ({_shorten(key_id)}) and $AWS_SECRET_ACCESS_KEY "
            "(the secret is not shown)"
        )
    return (
        "none in the environment or a credentials_file: boto3 looks in ~/.aws/credentials"
        f"{' [' + settings.objectstore_profile + ']' if settings.objectstore_profile else ''}"
        ", then for a container or instance role"
    )


def make_client(settings: Settings, pool_size: int = 10) -> Any:
    """A boto3 S3 client for ``[objectstore]`` (thread-safe: share one per process)."""
    import boto3
    from botocore.config import Config

    keys: dict[str, str] = {}
    profile = settings.objectstore_profile
    if settings.objectstore_credentials_file is not None:
        keys = read_credentials_file(settings.objectstore_credentials_file, profile)
        profile = None  # the keys are read: no boto3 profile lookup
    session = boto3.session.Session(profile_name=profile)
    config = Config(
        region_name=settings.objectstore_region,
        connect_timeout=settings.objectstore_connect_timeout,
        read_timeout=settings.objectstore_read_timeout,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        s3={"addressing_style": settings.objectstore_addressing_style},
        max_pool_connections=pool_size,
        user_agent_extra=f"packrat/{__version__}",
        # Packrat sends the sha256 it already knows; the CRC32 that boto3 adds
        # by default is refused by some S3-compatible stores (GCS).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client(
        "s3",
        endpoint_url=settings.objectstore_endpoint_url,
        config=config,
        **keys,
    )
