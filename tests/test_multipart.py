"""``multipart``'s readings of a form's headers agree with python-multipart's on every value."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from python_multipart.multipart import parse_options_header

from packrat.frontend.multipart import disposition, form_boundary

TRICKY = st.text(alphabet=st.sampled_from("ab-=;:\"\\* \t'()+_,./?é"), max_size=12)


def _boundary_by_parser(content_type: str) -> bytes | None:
    kind, options = parse_options_header(content_type)
    return options.get(b"boundary") if kind == b"multipart/form-data" else None


@given(
    st.sampled_from(["multipart/form-data; ", "multipart/form-data;", "Multipart/Form-Data; "]),
    st.sampled_from(["boundary=", "Boundary=", "boundary*=", "boundary = "]),
    TRICKY,
)
@example("multipart/form-data; ", "boundary=", "----packratbenchQ3x7Lw0pVd")
@example("multipart/form-data; ", "boundary=", '"quoted;b"')
def test_the_boundary_is_the_parsers(kind: str, parameter: str, value: str) -> None:
    content_type = kind + parameter + value
    assert form_boundary(content_type) == _boundary_by_parser(content_type)


@given(TRICKY, st.one_of(st.none(), TRICKY), st.sampled_from(['"', ""]))
@example("file", "blob.bin", '"')
@example("file", "", '"')
@example("file", "C:\\dir\\a.txt", '"')
@example("fi;le", None, '"')
def test_the_disposition_is_the_parsers(name: str, filename: str | None, quote: str) -> None:
    value = f"form-data; name={quote}{name}{quote}"
    if filename is not None:
        value += f"; filename={quote}{filename}{quote}"
    raw = value.encode("utf-8")
    _, options = parse_options_header(raw)
    assert disposition(raw) == (options.get(b"name", b""), options.get(b"filename"))
