"""The tests' own helpers, one home each; ``tests/conftest.py`` only wraps them in fixtures.

``processes``: Packrat processes, their configs and ports.  ``waiting``:
polling for a condition, a server answering.  ``rawhttp``: requests sent
and read byte for byte.  ``cli``: the ``packrat`` command.  ``disk``: what
a cache root spends.  ``hostile``: a server that lies, for the clients.
"""
