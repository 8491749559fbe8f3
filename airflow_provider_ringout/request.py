"""
One call's request as one value: :class:`RingOutRequest` holds the five fields a RingOut POST is made of, each
checked once when the value is built, and turns them into the POST body. Below the hook and the tasks (it imports
only ``phone`` and ``exceptions``), so both carry it without importing each other.

A task builds it from its fields when the DAG is parsed if none of them holds a template
(:func:`request_at_parse`), else from the rendered fields when it runs; the hook takes it (``request=``) as well
as the loose keyword arguments it has always taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_ringout.exceptions import RingCentralConfigError
from airflow_provider_ringout.phone import is_ascii_digits, mask_phone_number, validate_e164

# What makes a string a Jinja template that Airflow renders before the task runs.
TEMPLATE_MARKERS = ("{{", "{%", "{#")


@dataclass(frozen=True, repr=False)
class RingOutRequest:
    """
    A call to place: ring ``from_number`` (None: the connection's default), then connect it to ``to_number``.

    Built only valid: each field is checked as it is set (E.164 numbers, ``play_prompt`` a bool, ``country_id``
    RingCentral's numeric id), so whoever holds one sends it without checking again. ``country_id`` is kept as
    a string; empty optional fields read as None. Its ``repr`` masks the numbers (they are personal data).

    :param to_number: the phone connected second (E.164, such as +14155550100).
    :param from_number: the phone rung first; None: the connection's ``from_number``.
    :param caller_id: the number the callee sees (E.164); None: RingCentral's choice.
    :param play_prompt: whether RingCentral asks the ``from`` phone to press 1 first.
    :param country_id: RingCentral's numeric country id of the numbers.
    :raises RingCentralConfigError: naming the first field that is wrong, and the form expected.
    """

    to_number: str
    from_number: str | None = None
    caller_id: str | None = None
    play_prompt: bool = False
    country_id: str | None = None

    def __post_init__(self) -> None:
        # Checked in the order a user reads them; the values are normalised in place (the class is frozen).
        checked = {
            "to_number": validate_e164(self.to_number, "to_number"),
            "from_number": validate_e164(self.from_number, "from_number", required=False),
            "caller_id": validate_e164(self.caller_id, "caller_id", required=False),
            "play_prompt": _flag(self.play_prompt),
            "country_id": _country(self.country_id),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={mask_phone_number(value, force=True)!r}" if name in _NUMBERS and value else f"{name}={value!r}"
            for name, value in self.fields().items()
        )
        return f"RingOutRequest({shown})"

    def fields(self) -> dict[str, Any]:
        """The five fields as plain values (JSON-friendly), by the keyword names the hook and the tasks use."""
        return fields_of(self)

    def body(self, *, default_from_number: str | None = None, connection: str | None = None) -> dict[str, Any]:
        """
        The JSON body of the ring-out POST.

        :param default_from_number: the connection's ``from_number`` (already checked when the connection was
            read), used when this request has none.
        :param connection: the connection's id, named in the error when neither gives a ``from_number``.
        :raises RingCentralConfigError: no ``from_number`` from the request or the connection.
        """
        from_number = self.from_number or default_from_number
        if not from_number:
            where = f"of connection {connection!r}" if connection else "of the connection"
            raise RingCentralConfigError(
                "from_number is required: pass from_number (the phone rung first, E.164 such as +14155550100) "
                f"or set the extra field 'from_number' {where}."
            )
        body: dict[str, Any] = {
            "from": {"phoneNumber": from_number},
            "to": {"phoneNumber": self.to_number},
            "playPrompt": self.play_prompt,
        }
        if self.caller_id:
            body["callerId"] = {"phoneNumber": self.caller_id}
        if self.country_id:
            body["country"] = {"id": self.country_id}
        return body


# The request's fields, by the keyword names the hook's methods and RingOutOperator's arguments use.
FIELDS = tuple(field.name for field in dataclasses.fields(RingOutRequest))
_NUMBERS = frozenset({"to_number", "from_number", "caller_id"})


def fields_of(holder: Any) -> dict[str, Any]:
    """The request fields as ``holder`` has them as attributes (a task's, or a :class:`RingOutRequest`'s)."""
    return {name: getattr(holder, name) for name in FIELDS}


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise RingCentralConfigError(f"play_prompt must be True or False; got {value!r}.")
    return value


def _country(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not is_ascii_digits(str(value)):
        raise RingCentralConfigError(f"country_id must be RingCentral's numeric country id; got {value!r}.")
    return str(value)


def is_templated(value: Any) -> bool:
    """
    Whether Airflow may still change ``value`` by rendering it: a string with Jinja in it, a container holding
    one, or an object resolved at run time (an XComArg, a mapped argument). Plain values are final when parsed.
    """
    if isinstance(value, str):
        return any(marker in value for marker in TEMPLATE_MARKERS)
    if value is None or isinstance(value, (bool, int, float)):
        return False
    if isinstance(value, Mapping):
        return any(is_templated(k) or is_templated(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(is_templated(v) for v in value)
    return True


def request_at_parse(fields: Mapping[str, Any]) -> RingOutRequest | None:
    """
    The request, checked now (when the DAG is parsed), if no field can change when the task is rendered; None
    when one holds a template or a value resolved at run time (the task builds it after rendering).

    :param fields: the five request fields by name, as the task was given them.
    :raises RingCentralConfigError: a plain field is wrong (a DAG import error, before anything runs).
    """
    if any(is_templated(value) for value in fields.values()):
        return None
    return RingOutRequest(**fields)
