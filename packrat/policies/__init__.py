"""Eviction policies, selected by name with ``[cache] policy``."""

from __future__ import annotations

from packrat.policies.base import Policy, admit, make_room
from packrat.policies.fifo import FIFO
from packrat.policies.gdsf import GDSF
from packrat.policies.lfuda import LFUDA
from packrat.policies.lru import LRU
from packrat.policies.s3fifo import S3FIFO
from packrat.policies.s3gdsf import S3GDSF
from packrat.policies.sieve import Sieve

__all__ = ["POLICIES", "Policy", "admit", "make_policy", "make_room"]

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (LRU, FIFO, Sieve, S3FIFO, GDSF, LFUDA, S3GDSF)
}


def make_policy(name: str, **kwargs) -> Policy:
    """Build the policy called ``name``; ``KeyError`` if there is none."""
    return POLICIES[name](**kwargs)
