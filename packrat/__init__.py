"""Packrat: a networked file cache with a bounded disk and pluggable eviction."""

__version__ = "0.1.0"
