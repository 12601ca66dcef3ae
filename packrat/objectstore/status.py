"""The store's state as ``/readyz`` and ``/api/stats`` report it: the uploader's figures
and this front end's breaker, ``ok`` or ``degraded``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies as Frontend


async def objectstore_status(frontend: Frontend, timeout: float) -> dict[str, Any]:
    """``state`` is ``degraded`` when the uploader does not answer, or any breaker is open."""
    assert frontend.readthrough is not None and frontend.uploader is not None
    uploader = await frontend.uploader.status(timeout)
    reads = frontend.readthrough.status()
    degraded = uploader is None or uploader["breaker"] != "closed" or reads["breaker"] != "closed"
    return {
        "state": "degraded" if degraded else "ok",
        "bucket": frontend.settings.objectstore_bucket,
        "prefix": frontend.settings.objectstore_prefix,
        "reads": reads,
        "uploader": uploader,
    }
