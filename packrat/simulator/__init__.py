"""Offline replay of request traces through Packrat's eviction policies."""
