"""The multipart/form-data body of a ``POST``, parsed as it streams in.

python-multipart (chosen over streaming-form-data by ``bench/multipart.py``:
faster on every body we tried, 3x on line-dense text) hands the ``file``
part's bytes on as they arrive, so memory per upload stays at one chunk
whatever the file size.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from packrat.core.errors import MalformedMultipart, MissingField

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024  # small form fields (e.g. ``sha256``) kept in memory
MAX_FILENAME_CHARS = 255
MAX_BOUNDARY = 70  # RFC 2046 section 5.1.1
# The shapes browsers, curl and the usual clients send, read by one match each instead of
# parse_options_header's generic split (a third of a small form's parsing); anything else
# (quoted pairs, other parameters, other spacing or case) goes through parse_options_header,
# whose result these give on every value they match (tests/test_multipart.py).
_PLAIN_FORM_TYPE = re.compile(r"multipart/form-data; ?boundary=([0-9A-Za-z'()+_,./:=?-]+)")
_PLAIN_DISPOSITION = re.compile(rb'form-data; name="([^"\\;]*)"(?:; filename="([^"\\;]*)")?')


class MultipartForm:
    """Feeds a multipart/form-data body through python-multipart.

    The part named ``file`` goes to ``on_file_data``; small fields are kept
    in ``fields``; ``close()`` checks that the body ended properly.  A file
    (a part with a filename) or a field too long for a form field arriving
    before ``file`` is the usual mistake of a form that names its file
    otherwise (``curl -F upload=@f``): it is refused at once as
    ``missing_field``, naming the field found, before its bytes are read.
    Other files after ``file`` are skipped.
    """

    def __init__(self, content_type: str, on_file_data: Callable[[bytes], None]) -> None:
        boundary = form_boundary(content_type)
        if not boundary:
            raise MalformedMultipart(
                "the body must be multipart/form-data with a boundary, the file in field 'file'"
            )
        if len(boundary) > MAX_BOUNDARY:
            raise MalformedMultipart(
                f"the multipart boundary is longer than {MAX_BOUNDARY} characters (RFC 2046)"
            )
        self.on_file_data = on_file_data
        self.filename: str | None = None
        self.content_type: str | None = None
        self.fields: dict[str, str] = {}
        self.file_seen = False
        self.complete = False
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._part: str | None = None  # "file", a field name, or None (skipped)
        self._field_value = b""
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError as e:
            raise MalformedMultipart(f"the multipart body is malformed: {e}") from None

    def close(self) -> None:
        if not self.complete:
            raise MalformedMultipart("the multipart body ended before its closing boundary")
        if not self.file_seen:
            found = ", ".join(repr(name) for name in self.fields) or "none"
            raise MissingField(
                f"the form has no field {FILE_FIELD!r} (fields found: {found}); "
                f"send the file as field {FILE_FIELD!r}"
            )

    def _misnamed(self, name: str, why: str) -> MissingField:
        return MissingField(
            f"the form has no field {FILE_FIELD!r} before field {name[:100]!r} ({why}); "
            f"send the file as field {FILE_FIELD!r}, e.g. curl -F {FILE_FIELD}=@NAME"
        )

    # -- python-multipart callbacks --------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_field = self._header_value = b""

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        raw_field, raw_name = disposition(self._headers.get(b"content-disposition", b""))
        name = raw_field.decode("utf-8", "replace")
        if name != FILE_FIELD and raw_name is not None:
            if not self.file_seen:
                raise self._misnamed(name, "a file")
            self._part = None
        elif name == FILE_FIELD:
            if self.file_seen:
                raise MalformedMultipart("the form has more than one 'file' field")
            self.file_seen = True
            self._part = FILE_FIELD
            if raw_name is not None:
                self.filename = clean_filename(raw_name.decode("utf-8", "replace"))
            part_type = self._headers.get(b"content-type", b"").decode("latin-1").strip()
            self.content_type = part_type or None
        else:
            self._part = name or None
            self._field_value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == FILE_FIELD:
            self.on_file_data(data[start:end])
        elif self._part is not None:
            self._field_value += data[start:end]
            if len(self._field_value) > MAX_FIELD_BYTES:
                too_long = f"longer than {MAX_FIELD_BYTES} bytes, too long for a form field"
                if not self.file_seen:
                    raise self._misnamed(self._part, too_long)
                raise MalformedMultipart(f"form field {self._part!r} is {too_long}")

    def _part_end(self) -> None:
        if self._part not in (None, FILE_FIELD):
            self.fields[self._part] = self._field_value.decode("utf-8", "replace")
        self._part = None

    def _end(self) -> None:
        self.complete = True


def form_boundary(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data body's ``Content-Type``; None for another type.

    >>> form_boundary("multipart/form-data; boundary=x-1"), form_boundary('text/plain; boundary=x')
    (b'x-1', None)
    """
    plain = _PLAIN_FORM_TYPE.fullmatch(content_type)
    if plain is not None:
        return plain.group(1).encode("latin-1")
    kind, options = parse_options_header(content_type)
    return options.get(b"boundary") if kind == b"multipart/form-data" else None


def disposition(value: bytes) -> tuple[bytes, bytes | None]:
    """A part's field name and file name (None: not a file) from its ``Content-Disposition``.

    >>> disposition(b'form-data; name="file"; filename="a.txt"'), disposition(b'form-data; name=k')
    ((b'file', b'a.txt'), (b'k', None))
    """
    plain = _PLAIN_DISPOSITION.fullmatch(value)
    if plain is not None:
        return plain.group(1), plain.group(2)
    _, options = parse_options_header(value)
    return options.get(b"name", b""), options.get(b"filename")


@functools.lru_cache(maxsize=4096)
def clean_filename(name: str) -> str:
    """The last path segment of ``name`` without control characters, at most 255 chars
    (remembered: build tools upload the same names again and again)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in (".", ".."):
        return ""
    return name[:MAX_FILENAME_CHARS]
