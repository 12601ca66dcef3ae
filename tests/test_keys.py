"""Key validation: one rule (packrat.core.keys), the same wherever it is checked.

The rule is S3's (any UTF-8 up to 1,024 bytes) less what would be misread in
a URL path or a log; a refusal names the key, the character and its
position.  The status page's pattern, the script's default keys and the
OpenAPI document's pattern come from the rule's one home, and are checked
against it here (the script's use of them in tests/test_browser.py).
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from pathlib import Path

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from packrat.core.keys import (
    FORBIDDEN_CLASS,
    KEY_PATTERN,
    MAX_KEY_BYTES,
    RESERVED_KEYS,
    RESERVED_PREFIXES,
    InvalidKey,
    key_path,
    validate_key,
)
from packrat.store import Layout

OPENAPI = Path(__file__).resolve().parent.parent / "packrat" / "frontend" / "openapi.json"


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "builds/2024/app.tar.gz",
        "Q1 report.pdf",  # what people name files
        "rapports/été/q1",
        "日本語/ファイル.txt",
        "family 👨‍👩‍👧.jpg",  # joiners between the emoji
        "100%/a?b#c&d=e+f",  # must be percent-encoded in a URL, may be in a key
        "%2e%2e",  # a key that is these six characters (the URL sends %252e%252e)
        "x-y_z.~1",
        "user@host:8080",
        "A" * 1024,
        "é" * 512,  # 1024 bytes of UTF-8
        "v1.2.3",
        ".hidden",
        "..a",
        "a..",
        " spaced ",
    ],
)
def test_valid_keys(key):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "invalid key '': the key is empty"),
        ("/", "invalid key '/': it starts with '/'"),
        ("/a", "invalid key '/a': it starts with '/'"),
        ("a/", "invalid key 'a/': it ends with '/' (a path ending in '/' names a collection"),
        ("a//b", "invalid key 'a//b': an empty segment at character 3 ('//')"),
        (".", "invalid key '.': segment '.' at character 1"),
        ("..", "invalid key '..': segment '..' at character 1"),
        ("a/./b", "invalid key 'a/./b': segment '.' at character 3"),
        ("a/b/../c", "invalid key 'a/b/../c': segment '..' at character 5"),
        ("../etc/passwd", "segment '..' at character 1"),
        ("a\\b", "invalid key 'a\\\\b': U+005C at character 2 is a backslash"),
        ("a\x00b", "invalid key 'a\\x00b': U+0000 at character 2 is a control character"),
        ("Q1\treport", "invalid key 'Q1\\treport': U+0009 at character 3 is a control character"),
        ("new\nline", "U+000A at character 4 is a control character"),
        ("été\x85", "U+0085 at character 4 is a control character"),
        ("a\u2028b", "U+2028 at character 2 is a line or paragraph separator"),
        ("invoice\u202efdp.exe", "U+202E at character 8 is a bidirectional control"),
        ("x\u2066y", "U+2066 at character 2 is a bidirectional control"),
        ("a\ud800", "U+D800 at character 2 is a lone surrogate"),
        ("A" * (MAX_KEY_BYTES + 1), "the key is 1025 bytes of UTF-8, more than 1024"),
        ("é" * 513, "the key is 1026 bytes of UTF-8, more than 1024"),
        ("exists/x", "invalid key 'exists/x': keys starting with 'exists' are reserved by the API"),
        ("api", "keys starting with 'api' are reserved"),
        ("metrics", "keys starting with 'metrics' are reserved"),
        ("static/packrat.css", "keys starting with 'static' are reserved"),
        ("favicon.ico", "invalid key 'favicon.ico': the key is reserved by the API"),
    ],
)
def test_invalid_keys_say_what_is_wrong_and_where(key, message):
    with pytest.raises(InvalidKey) as refused:
        validate_key(key)
    assert message in str(refused.value)
    assert refused.value.status == 400 and refused.value.code == "invalid_key"


def test_a_long_key_is_shown_cut_short():
    with pytest.raises(InvalidKey) as refused:
        validate_key("x" * 2000 + "\x00")
    assert str(refused.value).startswith(
        "invalid key '" + "x" * 100 + "…': U+0000 at character 2001"
    )


# -- the rule, written again plainly, against the function -------------------

FORBIDDEN_CHARACTERS = {
    *map(chr, range(0x20)),
    *map(chr, range(0x7F, 0xA0)),
    "\\",
    "\u2028",
    "\u2029",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
}


def expected_problem(key: str) -> str | None:
    """Why ``key`` is refused, from the rule as README states it; None when it is valid."""
    if not key:
        return "empty"
    for position, char in enumerate(key, 1):
        if char in FORBIDDEN_CHARACTERS or unicodedata.category(char) == "Cs":
            return f"U+{ord(char):04X} at character {position}"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return "bytes of UTF-8"
    segments = key.split("/")
    for segment in segments:
        if segment == "":
            return "/"  # it starts with '/', ends with '/', or has '//'
        if segment in (".", ".."):
            return f"segment {segment!r}"
    if segments[0] in RESERVED_PREFIXES or key in RESERVED_KEYS:
        return "reserved by the API"
    return None


KEYS = st.lists(
    st.one_of(
        st.text(st.characters(codec=None), max_size=12),
        st.sampled_from(["", ".", "..", "api", "exists", "favicon.ico", "a\\b", "\u202e"]),
    ),
    min_size=1,
    max_size=6,
).map("/".join)


@given(KEYS)
@example("favicon.ico")
@example("é" * 512 + "/")
@example("a" * 1025)
def test_validate_key_is_the_rule(key):
    problem = expected_problem(key)
    try:
        assert validate_key(key) == key
    except InvalidKey as refused:
        assert problem is not None, (key, str(refused))
        message = str(refused)
        assert message.startswith(f"invalid key {key[:100]!r}"[:-1])
        assert problem in message, (problem, message)
    else:
        assert problem is None, (key, problem)


@given(KEYS)
def test_the_pattern_is_the_rules_characters_and_slashes(key):
    """KEY_PATTERN (the page's and the OpenAPI document's) accepts exactly the keys
    whose only problems, if any, are length, dot segments or a reserved name."""
    plain = all(key.split("/")) and not any(
        char in FORBIDDEN_CHARACTERS or unicodedata.category(char) == "Cs" for char in key
    )
    assert (re.fullmatch(KEY_PATTERN, key) is not None) == plain, key


@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=40))
def test_key_path_is_read_back_as_the_key(key):
    """What the server decodes (percent-decoding, then UTF-8) is the key the client sent."""
    from urllib.parse import unquote_to_bytes

    path = key_path(key)
    assert path.startswith("/") and path.isascii()
    assert not set(path) & set(" ?#\\")
    assert unquote_to_bytes(path[1:]).decode("utf-8") == key


# -- one rule, wherever it is checked -------------------------------------------


def test_the_openapi_document_has_the_rules_pattern():
    schema = json.loads(OPENAPI.read_text())["components"]["schemas"]["Key"]
    assert schema["pattern"] == f"^{KEY_PATTERN}$"
    assert schema["maxLength"] == MAX_KEY_BYTES


def test_the_status_page_has_the_rules_pattern_and_characters(packrat_server):
    page = requests.get(packrat_server.url + "/", timeout=10).text
    attribute = re.compile(r'id="key" name="key" required maxlength="(\d+)" pattern="([^"]*)"')
    maxlength, pattern = attribute.search(page).groups()
    assert (int(maxlength), html.unescape(pattern)) == (MAX_KEY_BYTES, KEY_PATTERN)
    forbidden = re.search(r'data-key-forbidden="([^"]*)"', page)[1]
    assert html.unescape(forbidden) == FORBIDDEN_CLASS


def test_objects_of_any_valid_key_round_trip_and_link_from_the_page(packrat_server):
    keys = ["Q1 report.pdf", "rapports/été/q1", "100%/a?b#c&d=e+f", "%2e%2e", "日本語/ファイル"]
    for number, key in enumerate(keys):
        url = packrat_server.url + key_path(key)
        assert requests.put(url, data=f"object {number}", timeout=10).status_code == 200
    for number, key in enumerate(keys):
        url = packrat_server.url + key_path(key)
        assert requests.get(url, timeout=10).text == f"object {number}"
        assert packrat_server.exists(key_path(key)[1:])
    page = requests.get(packrat_server.url + "/", timeout=10).text
    for key in keys:
        assert f'<a href="{html.escape(key_path(key))}">{html.escape(key)}</a>' in page


def test_object_paths_stay_under_objects_with_one_level_of_256_directories(tmp_path):
    layout = Layout(tmp_path)
    for key in ("a", "x/y/z", "..a", "a" * 1024, "rapports/été/q1"):
        path = layout.object_path(key)
        relative = path.relative_to(layout.objects)
        assert len(relative.parts) == 2
        assert relative.parts[0] == relative.parts[1][:2]
        assert len(relative.parts[1]) == 64


CONTROL = [chr(code) for code in (*range(0x20), *range(0x7F, 0xA0))]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_control_characters_are_refused_in_every_position(char):
    """``$`` in a pattern matches before a final newline; the whole key must match."""
    for key in (char, f"{char}a", f"a{char}", f"a{char}b", f"a/{char}", f"{char}/a", f"..{char}"):
        with pytest.raises(InvalidKey):
            validate_key(key)
