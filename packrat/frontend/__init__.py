"""The front end: Tornado HTTP processes that do all client and file I/O."""
