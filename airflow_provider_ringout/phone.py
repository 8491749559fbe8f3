"""E.164 phone numbers: validation before anything is sent, and partial masking for logs (numbers are personal data)."""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_ringout.exceptions import RingCentralConfigError

# [0-9], not \d: \d also matches other scripts' digits (Arabic-Indic, superscripts...), which no network dials.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_EXAMPLE = "+14155550100"


def validate_e164(value: Any, field: str, *, required: bool = True) -> str | None:
    """
    Return ``value`` if it is an E.164 number (``+`` then 2 to 15 digits, no spaces), else raise.

    The message names ``field`` and shows the expected form, so the user knows what to change.
    """
    if value is None or value == "":
        if not required:
            return None
        raise RingCentralConfigError(
            f"{field} is required: give an E.164 phone number such as {_EXAMPLE} ('+', country code, number)."
        )
    if not isinstance(value, str):
        native = ""
        if isinstance(value, int) and not isinstance(value, bool):
            native = (
                " (a DAG with render_template_as_native_obj=True renders a template giving '+1...' as a number, "
                "dropping the '+': give the number itself as text, which is never rendered, or a dict/list "
                "from which the task reads it)"
            )
        raise RingCentralConfigError(
            f"{field} must be one phone number as a string in E.164 form such as {_EXAMPLE}; "
            f"got a {type(value).__name__}{native}."
        )
    if _E164.fullmatch(value):
        return value
    if "{{" in value or "{%" in value:
        hint = "it looks like an unrendered template; check that the field is templated and the value exists"
    elif not value.startswith("+"):
        hint = "it has no leading '+' and country code (national formats are not accepted)"
    elif re.search(r"[\s\-().]", value):
        hint = "remove spaces, dashes, dots and brackets"
    elif value.startswith("+0"):
        hint = "a country code never starts with 0"
    elif not is_ascii_digits(value[1:]):
        hint = "only digits (0-9) may follow the '+'"
    else:
        hint = "it must have 2 to 15 digits after the '+'"
    raise RingCentralConfigError(
        f"{field} is not an E.164 phone number ({hint}): got {mask_phone_number(value, force=True)!r}; "
        f"expected a form like {_EXAMPLE}."
    )


def is_literal_number(content: Any) -> bool:
    """
    Whether ``content`` is an E.164 number written out (no template in it): rendering it would change nothing,
    except under ``render_template_as_native_obj``, which reads ``"+14155550100"`` as the int 14155550100.
    """
    return isinstance(content, str) and _E164.fullmatch(content) is not None


def is_ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the digits 0-9 (``str.isdigit`` also accepts ``'²'`` and ``'٤'``)."""
    return text.isascii() and text.isdigit()


def mask_phone_number(number: str | None, *, force: bool = False) -> str:
    """
    Show a number partly masked, e.g. ``+1******4567``, unless whole numbers are enabled in the config.

    ``force`` masks regardless of the ``[ringcentral] log_full_phone_numbers`` option.
    """
    if not number:
        return str(number)
    if not force and log_full_phone_numbers():
        return number
    if len(number) <= 6:
        return number[:1] + "*" * (len(number) - 1)
    return number[:2] + "*" * (len(number) - 6) + number[-4:]


def log_full_phone_numbers() -> bool:
    """Whether ``[ringcentral] log_full_phone_numbers`` asks for whole numbers in logs."""
    from airflow.providers.common.compat.sdk import conf

    try:
        return conf.getboolean("ringcentral", "log_full_phone_numbers", fallback=False)
    except (ValueError, TypeError):
        return False
