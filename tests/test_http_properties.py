"""Property-based tests (hypothesis) of key validation, header building and answers' bodies."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tornado.web import RequestHandler

from packrat.core.keys import MAX_KEY_BYTES, RESERVED_PREFIXES, InvalidKey, validate_key
from packrat.frontend.envelope import json_body
from packrat.frontend.headers import (
    clean_content_type,
    content_disposition,
    disposition_filename,
    parse_range,
)
from packrat.frontend.multipart import clean_filename
from packrat.frontend.uploads import answer_body
from packrat.store import Layout

SEGMENT_CHARS = "ABCXYZabcxyz0189._~!$&'()*+,;=:@-"
SAFE_HEADER = re.compile(r"[\x20-\x7e]*")
keyish = st.lists(st.text(SEGMENT_CHARS, min_size=0, max_size=12), min_size=1, max_size=6).map(
    "/".join
)
anything = st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=300)
hostile = st.sampled_from(["..", ".", "%2e", "\\", "\x00", "/", "%00", "\r\n", "\u202e", "~"])


@settings(max_examples=400)
@given(st.one_of(keyish, anything, st.lists(st.one_of(keyish, hostile)).map("".join)))
@example("a/../b")
@example("..")
@example("a\\..\\b")
@example("x" * 1025)
def test_validate_key_accepts_only_safe_keys(candidate):
    try:
        key = validate_key(candidate)
    except InvalidKey:
        return
    assert key == candidate
    assert len(key.encode()) <= MAX_KEY_BYTES
    segments = key.split("/")
    assert all(segment not in ("", ".", "..") for segment in segments)
    assert segments[0] not in RESERVED_PREFIXES
    assert not set(key) & set("\\\x00\r\n\t\x7f\x85\u2028\u202e")  # "%?# " may be in keys
    root = Path("/cache-root")
    path = Layout(root).object_path(key)
    assert path.parent.parent == root / "objects"
    assert path.name == re.sub(r"[^0-9a-f]", "", path.name) and len(path.name) == 64


@settings(max_examples=400)
@given(st.one_of(anything, st.text(max_size=50), st.text('"\\\r\n;%\x00\x7f é', max_size=30)))
@example('a"; filename="evil.exe')
@example("\r\nSet-Cookie: a=b")
@example("\ud800")
def test_content_disposition_is_always_a_safe_header(filename):
    header = content_disposition(filename)
    assert SAFE_HEADER.fullmatch(header), header
    assert RequestHandler._convert_header_value(None, header) == header  # Tornado accepts it
    assert header.startswith('attachment; filename="')
    quoted = header.split('filename="', 1)[1].split('"', 1)[0]
    assert header.count('"') == 2 and "\\" not in quoted
    if filename and SAFE_HEADER.fullmatch(filename) and not set(filename) & set('"\\%'):
        assert header == f'attachment; filename="{filename}"'
    elif "\ud800" not in filename and not any(0xD800 <= ord(c) <= 0xDFFF for c in filename):
        # The exact name comes back from filename*.
        assert disposition_filename(header) == filename or filename == ""


@given(anything)
def test_clean_filename_is_a_plain_name(name):
    cleaned = clean_filename(name)
    assert "/" not in cleaned and "\\" not in cleaned
    assert cleaned not in (".", "..")
    assert all(ch.isprintable() for ch in cleaned)
    assert len(cleaned) <= 255


@given(
    st.one_of(anything, st.from_regex(r"[a-z]+/[a-z+.-]+(; ?[a-z]+=[a-z0-9-]+)?", fullmatch=True))
)
def test_clean_content_type_is_a_safe_header(value):
    cleaned = clean_content_type(value)
    if cleaned is not None:
        assert SAFE_HEADER.fullmatch(cleaned) and "/" in cleaned and len(cleaned) <= 255


@settings(max_examples=300)
@given(
    st.one_of(
        anything,
        st.from_regex(r"bytes=[0-9]{0,4}-[0-9]{0,4}", fullmatch=True),
        st.from_regex(r"bytes=[0-9]{0,3}-[0-9]{0,3}(,[0-9]{0,3}-[0-9]{0,3})*", fullmatch=True),
    ),
    st.integers(0, 5000),
)
def test_parse_range_is_in_bounds_or_refused(header, size):
    try:
        span = parse_range(header, size)
    except ValueError:
        return  # 416
    if span is not None:
        first, last = span
        assert 0 <= first <= last < size


@given(
    key=anything,
    size=st.integers(0, 2**63),
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    filename=anything,
    content_type=anything,
    evicted=st.integers(0, 2**31),
)
def test_an_uploads_answer_is_the_json_answer_of_its_result(
    key, size, sha256, filename, content_type, evicted
):
    """``answer_body`` writes by hand what ``json_body`` writes: every answer alike
    (the result's fields in ``Upload.settle``'s order)."""
    result = {
        "success": True,
        "key": key,
        "size": size,
        "sha256": sha256,
        "filename": filename,
        "content_type": content_type,
        "evicted": evicted,
    }
    assert answer_body(result) == json_body(result)
