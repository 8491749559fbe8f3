"""E.164 validation and masking: any input gives a number or our error, never a crash or a request."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.phone import mask_phone_number, validate_e164


@pytest.mark.parametrize("number", ["+14155550100", "+4930123456", "+12", "+123456789012345"])
def test_valid_numbers(number: str) -> None:
    assert validate_e164(number, "to_number") == number


@pytest.mark.parametrize(
    ("number", "hint"),
    [
        ("", "required"),
        (None, "required"),
        ("call me", "no leading '+'"),
        ("+1 415 555 0100", "remove spaces"),
        ("+1-415-555-0100", "remove spaces"),
        ("4155550100", "national formats"),
        ("+04155550100", "never starts with 0"),
        ("+1234567890123456", "2 to 15 digits"),
        ("+1", "2 to 15 digits"),
        ("+1415abc0100", "only digits"),
        ("{{ params.to }}", "unrendered template"),
        (["+14155550100"], "as a string"),
        (14155550100, "as a string"),
    ],
)
def test_invalid_numbers_name_the_field(number: Any, hint: str) -> None:
    with pytest.raises(RingCentralConfigError) as err:
        validate_e164(number, "to_number")
    assert str(err.value).startswith("to_number")
    assert hint in str(err.value)


def test_optional_number() -> None:
    assert validate_e164(None, "caller_id", required=False) is None


def test_masking() -> None:
    assert mask_phone_number("+14155554567") == "+1******4567"
    assert mask_phone_number("+12") == "+**"


def test_full_numbers_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__RINGCENTRAL__LOG_FULL_PHONE_NUMBERS", "True")
    assert mask_phone_number("+14155554567") == "+14155554567"
    assert mask_phone_number("+14155554567", force=True) == "+1******4567"


@given(st.one_of(st.text(max_size=30), st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=2)))
def test_any_input_gives_a_number_or_our_error(value: Any) -> None:
    try:
        result = validate_e164(value, "to_number")
    except RingCentralConfigError as exc:
        assert str(exc).startswith("to_number")
    else:
        assert isinstance(result, str) and re.fullmatch(r"\+[1-9]\d{1,14}", result)


@given(st.text(alphabet="+0123456789", min_size=7, max_size=16))
def test_masked_numbers_hide_the_middle(number: str) -> None:
    masked = mask_phone_number(number, force=True)
    assert len(masked) == len(number) and masked[-4:] == number[-4:] and "*" in masked


@pytest.mark.parametrize(
    "number",
    [
        "+1\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0660",  # Arabic-Indic digits
        "+1\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff10\uff10",  # fullwidth digits
        "+14155550\u00b2",  # a superscript two
        "+\u0661\u0664\u0661\u0665",
    ],
)
def test_only_ascii_digits_are_digits(number: str) -> None:
    with pytest.raises(RingCentralConfigError, match="to_number") as err:
        validate_e164(number, "to_number")
    assert "0-9" in str(err.value) or "E.164" in str(err.value)
