"""core.numbers: the one rule for whole numbers read from text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from packrat.core.numbers import MAX_DIGITS, is_digits, whole_number


@given(st.integers(min_value=0, max_value=10**MAX_DIGITS - 1))
def test_every_number_of_up_to_max_digits_reads_back(n: int) -> None:
    assert whole_number(str(n)) == n
    assert whole_number(str(n).zfill(MAX_DIGITS)) == n


@given(st.text())
def test_any_text_is_a_number_or_none_and_never_raises(text: str) -> None:
    value = whole_number(text)
    if value is None:
        assert not (is_digits(text) and len(text) <= MAX_DIGITS)
    else:
        assert text.isascii() and text == str(value).zfill(len(text))
        assert 0 <= value < 2**63


@given(st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1))
def test_digits_other_than_ascii_are_refused(text: str) -> None:
    if not text.isascii():
        assert whole_number(text) is None and not is_digits(text)


def test_more_digits_than_allowed_are_refused() -> None:
    assert whole_number("9" * (MAX_DIGITS + 1)) is None
    assert whole_number("123456789", max_digits=9) == 123456789
    assert whole_number("1234567890", max_digits=9) is None
