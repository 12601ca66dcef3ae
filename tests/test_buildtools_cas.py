"""``packrat.buildtools.cas``: content-addressed keys however spelled, sha256 or BLAKE3."""

from __future__ import annotations

import hashlib

import blake3
from hypothesis import given
from hypothesis import strategies as st

from packrat.buildtools.cas import blobs_of, body_matches, content_address

SEGMENTS = st.from_regex(r"[a-z0-9._-]{1,8}", fullmatch=True).filter(lambda s: s not in ".")
CASES = st.sampled_from(["cas", "CAS", "Cas", "cAs"])


@given(st.lists(SEGMENTS, max_size=3), CASES, st.binary(max_size=200), st.booleans())
def test_every_spelling_of_a_cas_key_names_its_digest(prefix, cas, body, upper):
    digest = hashlib.sha256(body).hexdigest()
    key = "/".join([*prefix, cas, digest.upper() if upper else digest])
    assert content_address(key) == digest


HEX64 = st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)


@given(st.lists(SEGMENTS.filter(lambda s: s.lower() != "cas"), min_size=1, max_size=3), HEX64)
def test_a_digest_under_another_segment_is_no_content_address(segments, name):
    assert content_address("/".join([*segments, name])) is None
    assert content_address(name) is None  # no segment above it at all


@given(CASES, st.text("0123456789abcdefxyz-", max_size=70))
def test_a_name_other_than_64_hex_digits_is_no_digest(cas, name):
    is_digest = len(name) == 64 and all(c in "0123456789abcdef" for c in name)
    assert (content_address(f"bazel/{cas}/{name}") is not None) == is_digest


@given(st.binary(max_size=300), st.booleans())
def test_a_body_matches_by_sha256_or_by_blake3(body, by_blake3):
    sha256, b3 = hashlib.sha256(body).hexdigest(), blake3.blake3(body).hexdigest()
    key = f"bazel/cas/{(b3 if by_blake3 else sha256).upper()}"
    expected = content_address(key)
    assert expected is not None and body_matches(expected, sha256, b3)
    other = blake3.blake3(body + b"!").hexdigest()
    assert not body_matches(other, sha256, b3)


@given(
    st.lists(st.sampled_from(["ac", "AC", "Ac", "cas", "x", "", "a/c"]), max_size=3),
    st.sampled_from(["ab" * 32, "AB" * 32, "a" * 63, "a" * 65, "g" * 64, "", "ac"]),
)
def test_an_action_key_is_ac_then_64_hex_digits_whatever_comes_before(segments, name):
    """``blobs_of``'s look at the key's tail never decides otherwise than its parse."""
    key = "/".join([*segments, name])
    parent = key.rpartition("/")[0]
    above, _, segment = parent.rpartition("/")
    expected = (above + "/cas/" if above else "cas/") if segment.lower() == "ac" else None
    is_digest = len(name) == 64 and all(c in "0123456789abcdefABCDEF" for c in name)
    assert blobs_of(key) == (expected if is_digest and "/" in key else None)
