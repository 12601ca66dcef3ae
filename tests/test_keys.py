"""Key validation: one function decides, and keys never become paths."""

from __future__ import annotations

import pytest

from packrat.core.keys import MAX_KEY_BYTES, InvalidKey, validate_key
from packrat.store import Layout


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "builds/2024/app.tar.gz",
        "x-y_z.~1",
        "user@host:8080",
        "a/b/c/d/e",
        "é" * 0 + "A" * 1024,
        "v1.2.3",
        ".hidden",
        "..a",
        "a..",
    ],
)
def test_valid_keys(key):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/",
        "/a",
        "a/",
        "a//b",
        ".",
        "..",
        "a/./b",
        "a/../b",
        "../etc/passwd",
        "a\\b",
        "a\x00b",
        "a b",
        "a\nb",
        "é",
        "%2e%2e",
        "A" * (MAX_KEY_BYTES + 1),
        "exists/x",
        "api",
        "metrics",
        "static/packrat.css",
    ],
)
def test_invalid_keys(key):
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_object_paths_stay_under_objects_with_one_level_of_256_directories(tmp_path):
    layout = Layout(tmp_path)
    for key in ("a", "x/y/z", "..a", "a" * 1024):
        path = layout.object_path(key)
        relative = path.relative_to(layout.objects)
        assert len(relative.parts) == 2
        assert relative.parts[0] == relative.parts[1][:2]
        assert len(relative.parts[1]) == 64


CONTROL = [chr(code) for code in (*range(0x20), 0x7F)]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_control_characters_are_refused_in_every_position(char):
    """``$`` in a pattern matches before a final newline; the whole key must match."""
    for key in (char, f"{char}a", f"a{char}", f"a{char}b", f"a/{char}", f"{char}/a", f"..{char}"):
        with pytest.raises(InvalidKey):
            validate_key(key)
