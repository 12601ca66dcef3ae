"""The object store: everything about object files, from staging to eviction.

Modules, in the order of an object's life:

* ``layout``: where things live under the cache root; the only code that
  builds a path, and the directory descriptors every process works through;
* ``lock``: one instance per cache root;
* ``staging``: front ends write uploads into ``staging/`` (``StagedFile``),
  and abandoned ones are swept;
* ``format``: the object file, data followed by a metadata trailer;
* ``writer``: the coordinator claims a staged file, publishes it with one
  rename, removes victims and deleted objects;
* ``accounting``: what each object costs against ``max_size``;
* ``reader``: front ends and fsck open objects safely and check digests;
* ``snapshot`` and ``scan``: start-up rebuilds the index from the files.

Invariants (``tests/test_store_machine.py`` checks them with random commits,
overwrites, deletes, vanishing staging files, and clean and ``kill -9``
restarts):

1. Every object file under ``objects/`` is in the coordinator's index, and
   every indexed key has its file.  (Between a crash and the next start-up
   the disk may hold files the index never saw; start-up adopts them.)
2. The index's byte count equals what the object files are charged
   (``accounting.charge``, from their allocated blocks) plus the fan-out
   directories' growth, and never exceeds ``max_size``; so ``du -s`` of the
   root stays within ``max_size + layout.FIXED_OVERHEAD`` plus the staging
   files of uploads in flight.
3. Every acknowledged object is readable, whole and with its digest, until
   it is evicted, deleted or overwritten; a reader sees the old version or
   the new one, never a mix and never neither.
4. Nothing is ever read or written outside the root: keys never become
   paths, and directories are opened without following symlinks.
"""

from packrat.store.format import CorruptObject, ObjectMeta
from packrat.store.layout import Layout, LayoutError, key_digest
from packrat.store.lock import RootLocked, lock_root
from packrat.store.reader import (
    Checker,
    MetadataCache,
    is_stored,
    open_entry,
    open_key,
    open_to_read,
    read_data,
)
from packrat.store.staging import NoSpace, StagedFile, sweep_staging

__all__ = [
    "Checker",
    "CorruptObject",
    "Layout",
    "LayoutError",
    "MetadataCache",
    "NoSpace",
    "ObjectMeta",
    "RootLocked",
    "StagedFile",
    "is_stored",
    "key_digest",
    "lock_root",
    "open_entry",
    "open_key",
    "open_to_read",
    "read_data",
    "sweep_staging",
]
