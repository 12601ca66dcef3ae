"""Compact containers for millions of entries: flat arrays of integers, no object per entry.

A Python ``dict`` entry with its key and value objects costs 100 to 200
bytes; these keep what the coordinator's index and the eviction policies
need in ``array`` columns indexed by small integers (*slots*), a few bytes
each.  No operation touches more than a bounded number of entries, so none
holds the coordinator's loop as the structure grows (a hash table doubles a
few buckets at a time, as Redis's ``dict`` does).
"""
