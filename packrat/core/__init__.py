"""What every role and tool shares: settings, error codes, keys, logging, exit statuses.

A leaf layer: it imports neither Tornado, ZeroMQ nor requests, so the
``packrat`` command's client side, the coordinator and the front ends can
all build on it (``tests/test_imports.py`` checks it).
"""
