"""The ``[objectstore]`` rules that need more than a value's syntax: credentials and libraries.

Credentials are never a setting.  With ``credentials_file`` they are read
from that file (the AWS shared-credentials format: a ``[default]`` or
``[<profile>]`` section with ``aws_access_key_id`` and
``aws_secret_access_key``, and ``aws_session_token`` for temporary ones);
without it, boto3's own chain finds them: ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` in the environment, ``~/.aws/credentials``
(``profile`` picks a section), a container or instance role.  The secret is
never logged and never printed: ``describe_credentials`` names the source and
shows the access key id cut short.  (``settings`` is a ``core.settings.Settings``,
which imports this module.)
"""

from __future__ import annotations

import configparser
import importlib.util
import os
from pathlib import Path
from typing import Any


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


def check_settings(settings: Any) -> None:
    """``ValueError`` (worded for the operator) when the store cannot be used as set."""
    for module in ("boto3", "inotify_simple"):
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"bucket: {module} is not installed (pip install 'packrat-cache[s3]')")
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


def describe_credentials(settings: Any) -> str:
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
