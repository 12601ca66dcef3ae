"""The store's operations as Packrat uses them, each counted and guarded by the breaker.

Blocking calls (boto3): the front ends run them on a thread pool, the
uploader on its workers.  What comes back is one of three things: a value,
``None`` for an object that is not there, or an exception of this module:

* ``StoreUnavailable``: no useful answer (the breaker is open, the store is
  unreachable, times out, throttles, fails with a 5xx, or refuses the
  credentials or the bucket); it counts against the breaker;
* ``PreconditionFailed``: a conditional write lost a race (another writer
  changed the key meanwhile);
* ``Refused``: the store answered the request with another 4xx (for an
  upload, ``BadDigest``: the bytes did not hash to the sha256 sent with them).
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from packrat.core.settings import Settings
from packrat.objectstore.breaker import Breaker
from packrat.objectstore.connect import make_client
from packrat.objectstore.metadata import Stored, decode, encode, store_key
from packrat.objectstore.metrics import StoreMetrics, store_metrics
from packrat.store import ObjectMeta

log = logging.getLogger("packrat.objectstore")

T = TypeVar("T")
MULTIPART_THRESHOLD = 512 << 20  # bytes: larger objects go in parts
PART_SIZE = 64 << 20  # bytes per part at least (S3 allows 10,000 parts)
MAX_PARTS = 10_000
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
_CONFIG_PROBLEMS = ("NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")


class StoreUnavailable(Exception):
    """The store gave no useful answer; the text says why (for logs and /api/stats)."""


class PreconditionFailed(Exception):
    """A conditional write found the key changed since it looked."""


class Refused(Exception):
    """The store refused the request (a 4xx); ``code`` is its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class DataReader:
    """A file-like view of an object's data (without its trailer), read with ``pread``.

    boto3 reads the body from it, and seeks back to retry; each byte read is
    counted as sent.
    """

    def __init__(self, fd: int, start: int, stop: int, count: Callable[[int], None]) -> None:
        self.fd = fd
        self.start = start
        self.stop = stop
        self.position = start
        self.count = count

    def read(self, size: int = -1) -> bytes:
        left = self.stop - self.position
        if size < 0 or size > left:
            size = left
        data = os.pread(self.fd, size, self.position) if size else b""
        self.position += len(data)
        self.count(len(data))
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: self.start, os.SEEK_CUR: self.position, os.SEEK_END: self.stop}
        self.position = min(max(base[whence] + offset, self.start), self.stop)
        return self.position - self.start

    def tell(self) -> int:
        return self.position - self.start

    def __len__(self) -> int:
        return self.stop - self.start


class ObjectStore:
    """One bucket (and key prefix) of an S3-compatible store."""

    def __init__(
        self,
        settings: Settings,
        breaker: Breaker | None = None,
        metrics: StoreMetrics | None = None,
        pool_size: int = 10,
    ) -> None:
        assert settings.objectstore_bucket is not None
        self.bucket = settings.objectstore_bucket
        self.prefix = settings.objectstore_prefix
        self.checksum = settings.objectstore_upload_checksum
        self.breaker = breaker or Breaker()
        self.metrics = metrics or store_metrics()
        self.client = make_client(settings, pool_size)
        self.last_error = ""  # the latest failure, for /api/stats

    # -- operations -------------------------------------------------------

    def head(self, key: str) -> Stored | None:
        """The object's metadata; None when absent (or not Packrat's)."""
        reply = self._call("head", lambda: self.client.head_object(**self._where(key)))
        return None if reply is None else self._stored(key, reply)

    def look(self, key: str) -> tuple[int, str] | None:
        """``(version, ETag)`` of what the store holds under ``key`` (version 0: an object
        that is not Packrat's); None when nothing is there."""
        reply = self._call("head", lambda: self.client.head_object(**self._where(key)))
        if reply is None:
            return None
        stored = decode(
            key,
            reply.get("Metadata") or {},
            reply.get("ContentType"),
            reply.get("ContentLength", -1),
            reply.get("ETag", ""),
        )
        return (0 if stored is None else stored.version), reply.get("ETag", "")

    def get(self, key: str) -> tuple[Stored, Any] | None:
        """The object's metadata and its body (a botocore ``StreamingBody``); None when absent.

        The caller reads the body (``read_chunk``) and closes it.
        """
        reply = self._call("get", lambda: self.client.get_object(**self._where(key)))
        if reply is None:
            return None
        stored = self._stored(key, reply)
        if stored is None:
            reply["Body"].close()
            return None
        return stored, reply["Body"]

    def read_chunk(self, body: Any, size: int) -> bytes:
        """The next bytes of a GET's body; ``StoreUnavailable`` when the transfer breaks."""
        try:
            chunk = body.read(size)
        except Exception as e:  # botocore's read timeouts, resets, protocol errors
            self._failed("get", "unavailable", e)
            raise StoreUnavailable(f"reading an object from the store failed: {e}") from None
        self.metrics.received.inc(len(chunk))
        return chunk

    def put(self, key: str, fd: int, meta: ObjectMeta, version: int, if_match: str | None) -> None:
        """Store the data of the object open as ``fd`` under ``version``.

        Conditional: on ``if_match`` (the ETag the key had when looked at),
        else only if the key is absent; ``PreconditionFailed`` otherwise.
        """
        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        fields = {
            **self._where(key),
            "Metadata": encode(meta, version),
            "ContentType": meta.content_type,
        }
        if meta.size > MULTIPART_THRESHOLD:
            self._put_parts(fd, meta, fields, condition)
            return
        body = DataReader(fd, 0, meta.size, self.metrics.sent.inc)
        if self.checksum:
            fields["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(meta.sha256)).decode()
        self._call(
            "put",
            lambda: self.client.put_object(
                Body=body, ContentLength=meta.size, **fields, **condition
            ),
        )

    def delete(self, key: str) -> None:
        self._call("delete", lambda: self.client.delete_object(**self._where(key)))

    def list(self, prefix: str, limit: int) -> tuple[list[str], bool]:
        """The first ``limit`` keys under ``prefix`` in the store, and whether more follow."""
        reply = self._call(
            "list",
            lambda: self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=store_key(self.prefix, prefix), MaxKeys=limit
            ),
        )
        if reply is None:  # a 404: nothing under it
            return [], False
        start = len(self.prefix)
        keys = [entry["Key"][start:] for entry in reply.get("Contents", ())]
        return keys, bool(reply.get("IsTruncated"))

    # -- the parts of a large object ----------------------------------------

    def _put_parts(
        self, fd: int, meta: ObjectMeta, fields: dict[str, Any], condition: dict[str, str]
    ) -> None:
        """A multipart upload; aborted if any part fails."""
        where = self._where(meta.key)
        started = self._call("put", lambda: self.client.create_multipart_upload(**fields))
        upload_id = started["UploadId"]
        part_size = max(PART_SIZE, -(-meta.size // MAX_PARTS))
        parts = []
        try:
            for number, offset in enumerate(range(0, meta.size, part_size), start=1):
                stop = min(offset + part_size, meta.size)
                body = DataReader(fd, offset, stop, self.metrics.sent.inc)
                reply = self._call(
                    "put",
                    lambda body=body, number=number: self.client.upload_part(
                        Body=body,
                        ContentLength=len(body),
                        PartNumber=number,
                        UploadId=upload_id,
                        **where,
                    ),
                )
                parts.append({"ETag": reply["ETag"], "PartNumber": number})
            self._call(
                "put",
                lambda: self.client.complete_multipart_upload(
                    UploadId=upload_id, MultipartUpload={"Parts": parts}, **where, **condition
                ),
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(UploadId=upload_id, **where)
            except Exception as e:  # the bucket's lifecycle rule cleans up what is left
                log.warning("could not abort the multipart upload of %r: %s", meta.key, e)
            raise

    # -- plumbing -----------------------------------------------------------

    def _where(self, key: str) -> dict[str, str]:
        return {"Bucket": self.bucket, "Key": store_key(self.prefix, key)}

    def _stored(self, key: str, reply: dict[str, Any]) -> Stored | None:
        stored = decode(
            key,
            reply.get("Metadata") or {},
            reply.get("ContentType"),
            reply.get("ContentLength", -1),
            reply.get("ETag", ""),
        )
        if stored is None:
            log.warning("the store's object for key %r has no valid Packrat metadata", key)
        return stored

    def _call(self, op: str, request: Callable[[], T]) -> T | None:
        """Run one request: breaker first, counted, its failure classified."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.breaker.allow():
            raise StoreUnavailable(f"the store is not asked for now (after: {self.last_error})")
        self.metrics.requests.labels(op).inc()
        started = time.perf_counter()
        try:
            reply = request()
        except ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = str(error.get("Message", "")) or code
            if status == 404 and code in _NOT_FOUND:
                self._succeeded()
                return None
            if status == 412 or code == "PreconditionFailed":
                self._succeeded()
                raise PreconditionFailed(message) from None
            if status >= 500 or status == 429 or code in ("SlowDown", "Throttling"):
                kind = "throttled" if status in (429, 503) else "server"
                self._failed(op, kind, f"{status} {code}: {message}")
                raise StoreUnavailable(f"the store answered {status} {code}") from None
            if status in (401, 403) or code in _CONFIG_PROBLEMS:
                self._failed(op, "refused", f"{status} {code}: {message}")
                raise StoreUnavailable(
                    f"the store refused the bucket or the credentials ({code})"
                ) from None
            self._succeeded()
            self.metrics.errors.labels(op, "refused").inc()
            raise Refused(code, message) from None
        except (BotoCoreError, OSError) as e:
            self._failed(op, "unavailable", e)
            raise StoreUnavailable(f"the store did not answer: {e}") from None
        except BaseException as e:
            self._failed(op, "unavailable", e)
            raise
        finally:
            self.metrics.duration.labels(op).observe(time.perf_counter() - started)
        self._succeeded()
        return reply

    def _succeeded(self) -> None:
        if not self.breaker.is_closed:
            log.info("the object store answers again")
        self.breaker.success()
        self.metrics.up.set(1)

    def _failed(self, op: str, kind: str, problem: object) -> None:
        was_closed = self.breaker.is_closed
        self.breaker.failure()
        self.metrics.errors.labels(op, kind).inc()
        self.last_error = f"{op}: {problem}"
        if was_closed and not self.breaker.is_closed:
            log.error("the object store is failing (%s); not asking it for a while", problem)
        self.metrics.up.set(1 if self.breaker.is_closed else 0)
