"""The ``packrat`` command: its parser (``main``), the server-side commands and the client ones.

The client commands and ``--version``/``--help`` import neither Tornado nor
ZeroMQ, so ``packrat exists`` in a shell loop starts in a blink.
"""
