"""An S3-compatible object store behind the cache (``[objectstore]``; docs/objectstore.md).

Off unless ``[objectstore] bucket`` is set.  Modules, by job:

* ``connect``: the boto3 client from the settings, and where credentials
  come from (never a setting, never printed);
* ``store``: the operations Packrat needs (look, get, conditional put,
  delete), counted (``metrics``) and guarded by a circuit breaker
  (``breaker``); ``metadata``: an object's metadata as S3 user metadata;
* ``uploader`` (its own process, ``packrat uploader``): the write-through,
  with ``backlog`` (the object files are the durable queue, a mark on disk
  says how far they reached the store) and ``watch`` (inotify);
* ``readthrough`` (in each front end): local misses fetched, verified,
  streamed while staged, committed; ``frontend`` hooks it and deletes onto
  the object path; ``uploader_client`` and ``messages``: the front ends'
  requests to the uploader; ``status``: what ``/readyz`` and ``/api/stats``
  say of the store.

No store I/O runs in the coordinator: it only commits what the read-through
staged (refusing it if the key was stored meanwhile).
"""
