"""What each kind of attestation must disclose to the ledger, and what values are allowed.

Identifiers (lots, units, codes) are plain printable ASCII: a lot number that looks the
same but differs by a Cyrillic letter or a zero-width space is how a double-spend hides.
Free text may be any Unicode, but never control characters and always NFC-normalised.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .kinds import Kind
from .payload import Disclosure

MAX_TEXT = 1_000
MAX_LIST = 200
MAX_DEPTH = 8
MAX_QUANTITY = 10**15
QUANTITY_DECIMALS = 6

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._/#+-]{0,199}")
_HS_CODE = re.compile(r"[0-9]{4,10}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

Check = Callable[[str, Any], None]


class FieldError(ValueError):
    """A disclosed field is missing or invalid; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"payload.fields.{field}: {message}")


def identifier(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise FieldError(name, "expected an identifier: printable ASCII letters, digits and :._/#+- (max 200)")


def text(name: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise FieldError(name, f"expected text of at most {MAX_TEXT} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in value):
        raise FieldError(name, "control or invisible formatting characters are not allowed")
    if unicodedata.normalize("NFC", value) != value:
        raise FieldError(name, "text must be NFC-normalised")


def address(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise FieldError(name, "expected a 0x-prefixed 20-byte address")


def exact_quantity(value: Any) -> Fraction | None:
    """`value` as an exact rational number, or None unless it is an allowed quantity.

    Allowed: a JSON number greater than 0 and at most MAX_QUANTITY, with at most
    QUANTITY_DECIMALS decimal places in its shortest decimal form (the form JSON
    canonicalisation writes, so signer and verifier read the same number). Conservation
    and caps compare these exact values: 0.1 + 0.2 is 0.3, with no rounding at the edges.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    decimal = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    exponent = decimal.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -QUANTITY_DECIMALS:
        return None
    exact = Fraction(decimal)
    return exact if 0 < exact <= MAX_QUANTITY else None


def quantity(name: str, value: Any) -> None:
    if exact_quantity(value) is None:
        raise FieldError(
            name, f"expected a number > 0 and <= {MAX_QUANTITY:.0e} with at most {QUANTITY_DECIMALS} decimal places"
        )


def timestamp(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise FieldError(name, "expected a unix time in seconds")


def boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise FieldError(name, "expected true or false")


def hs_code(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _HS_CODE.fullmatch(value):
        raise FieldError(name, "expected an HS code of 4 to 10 digits")


def country(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _COUNTRY.fullmatch(value):
        raise FieldError(name, "expected an ISO 3166-1 alpha-2 country code")


def list_of(check: Check) -> Check:
    def checker(name: str, value: Any) -> None:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise FieldError(name, f"expected a non-empty list of at most {MAX_LIST}")
        for i, item in enumerate(value):
            check(f"{name}[{i}]", item)

    return checker


# (required fields, optional fields, minimum refs, maximum refs)
RULES: dict[Kind, tuple[dict[str, Check], dict[str, Check], int, int]] = {
    Kind.IP_ASSET: ({}, {"title": text}, 0, 0),
    Kind.LICENCE: (
        {
            "licensee": address,
            "goodsClasses": list_of(hs_code),
            "territories": list_of(country),
            "validFrom": timestamp,
            "validUntil": timestamp,
        },
        {"quantityCap": quantity, "sublicensing": boolean},
        1,
        64,
    ),
    Kind.PRODUCTION: ({"lot": identifier, "quantity": quantity, "unit": identifier, "goodsClass": hs_code}, {}, 0, 64),
    Kind.TRANSFER: ({"lot": identifier, "quantity": quantity, "unit": identifier, "to": address}, {}, 1, 64),
    Kind.TRANSFER_ACCEPTANCE: ({}, {"note": text}, 1, 1),
    Kind.SHIPMENT: (
        {"quantity": quantity, "unit": identifier, "goodsClass": hs_code, "destination": country},
        {"shipmentId": identifier, "lot": identifier},
        1,
        64,
    ),
    Kind.REVOCATION: ({}, {"reason": text}, 1, 1),
    Kind.CUSTOMS_FINDING: ({"finding": identifier}, {"note": text, "severity": identifier}, 0, 64),
    Kind.WATCHLIST: ({"goodsClasses": list_of(hs_code)}, {"territories": list_of(country), "note": text}, 0, 0),
}


def check_fields(kind: Kind, disclosure: Disclosure, ref_count: int) -> None:
    """Raise `FieldError` unless `disclosure` satisfies the rules of `kind`."""
    required, optional, min_refs, max_refs = RULES[kind]
    if not min_refs <= ref_count <= max_refs:
        raise FieldError("refs", f"a {kind.type_name} takes {min_refs} to {max_refs} references, got {ref_count}")
    for name, check in required.items():
        if name not in disclosure.fields:
            raise FieldError(name, f"required for a {kind.type_name} and must be disclosed")
        check(name, disclosure.fields[name].value)
    for name, disclosed in disclosure.fields.items():
        if name in optional:
            optional[name](name, disclosed.value)
        elif name not in required:
            _generic(name, disclosed.value, 0)
    if kind is Kind.LICENCE and disclosure.value("validUntil") <= disclosure.value("validFrom"):
        raise FieldError("validUntil", "must be after validFrom")


def _generic(name: str, value: Any, depth: int) -> None:
    """Any other field: JSON of bounded depth whose strings are clean text."""
    if depth > MAX_DEPTH:
        raise FieldError(name, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        text(name, value)
    elif isinstance(value, list):
        for item in value[: MAX_LIST + 1]:
            _generic(name, item, depth + 1)
        if len(value) > MAX_LIST:
            raise FieldError(name, f"lists hold at most {MAX_LIST} items")
    elif isinstance(value, dict):
        for key, item in value.items():
            text(name, key)
            _generic(name, item, depth + 1)
