"""Reaching the store: the boto3 client from ``[objectstore]``.

Credentials come from ``core.objectstore_settings`` (a credentials file) or
boto3's own chain.  botocore's own loggers are held at ``warning``: at
``debug`` they would print signed request headers.
"""

from __future__ import annotations

import logging
from typing import Any

from packrat import __version__
from packrat.core.objectstore_settings import read_credentials_file
from packrat.core.settings import Settings

for _name in ("botocore", "boto3", "s3transfer", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# boto3's own retries: none.  Its back-off would hold a miss for up to a second
# for each failure; a failed read is a miss, a failed upload waits its turn again,
# and the breaker and the uploader's back-off handle outages.
MAX_ATTEMPTS = 1


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
