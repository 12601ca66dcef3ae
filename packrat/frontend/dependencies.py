"""What the handlers of one front-end process share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packrat.coordinator.connection import AsyncCoordinatorClient
from packrat.core.settings import Settings
from packrat.frontend.auth import Authenticator
from packrat.frontend.metrics import FrontendMetrics
from packrat.frontend.upload_slots import UploadSlots
from packrat.store import Layout, MetadataCache

if TYPE_CHECKING:
    from packrat.objectstore.readthrough import ReadThrough
    from packrat.objectstore.uploader_client import UploaderClient


@dataclass
class Dependencies:
    """One front end's dependencies, handed to every handler (``initialize``)."""

    settings: Settings
    layout: Layout  # with its directories open
    coordinator: AsyncCoordinatorClient
    auth: Authenticator
    uploads: UploadSlots
    metadata: MetadataCache  # what HEAD, exists and GETs of small objects answer from
    number: int = 0  # this front end's number, for logs
    metrics: FrontendMetrics = field(default_factory=FrontendMetrics)
    # [objectstore] set: local misses are fetched from the store, deletes go there too
    readthrough: ReadThrough | None = None
    uploader: UploaderClient | None = None
