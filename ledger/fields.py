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
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
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
    return _exact_quantity(value)


@lru_cache(maxsize=4096, typed=True)  # typed: 1 and 1.0 are kept apart (bools never reach it)
def _exact_quantity(value: int | float) -> Fraction | None:
    """`exact_quantity` of a number: a pure function, and every verification asks it of
    the same custody quantities several times (conservation, caps, risk)."""
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
    Kind.OBSERVATION: (
        {"eventType": identifier, "eventTime": timestamp},
        {"lot": identifier, "quantity": quantity, "unit": identifier, "bizStep": text},
        0,
        64,
    ),
}


# Fields a record of the kind always publishes (never confidential): every node must be
# able to read them, so a node that mirrors a record without one knows it was withheld
# on the way (a relay dropping a watch-list entry's goods classes would otherwise take the
# entry off every other node's watch list, and its verdicts with it).
ALWAYS_PUBLIC: dict[Kind, frozenset[str]] = {Kind.WATCHLIST: frozenset({"goodsClasses"})}


def check_fields(kind: Kind, disclosure: Disclosure, ref_count: int) -> None:
    """Raise `FieldError` unless `disclosure` satisfies the rules of `kind` (the first of
    `field_errors`)."""
    errors = field_errors(kind, disclosure, ref_count)
    if errors:
        raise errors[0]


def field_errors(kind: Kind, disclosure: Disclosure, ref_count: int) -> list[FieldError]:
    """Every way `disclosure` breaks the rules of `kind`, in a stable order (references,
    required fields, then the disclosed fields): a submitter learns all problems at once."""
    required, optional, min_refs, max_refs = RULES[kind]
    errors: list[FieldError] = []

    def run(check: Check, name: str, value: Any) -> None:
        try:
            check(name, value)
        except FieldError as exc:
            errors.append(exc)

    if not min_refs <= ref_count <= max_refs:
        errors.append(
            FieldError("refs", f"a {kind.type_name} takes {min_refs} to {max_refs} references, got {ref_count}")
        )
    for name, check in required.items():
        if name not in disclosure.fields:
            errors.append(FieldError(name, f"required for a {kind.type_name} and must be disclosed"))
        else:
            run(check, name, disclosure.fields[name].value)
    for name, disclosed in disclosure.fields.items():
        if name in optional:
            run(optional[name], name, disclosed.value)
        elif name not in required:
            run(lambda n, v: _generic(n, v, 0), name, disclosed.value)
    checked = kind is Kind.LICENCE and not {e.field for e in errors} & {"validFrom", "validUntil"}
    if checked and disclosure.value("validUntil") <= disclosure.value("validFrom"):
        errors.append(FieldError("validUntil", "must be after validFrom"))
    return errors


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


# ------------------------------------------------------------------ what each field means
#
# The published description of every kind (`provenance kinds`, the JSON Schemas in the
# OpenAPI document, docs/kinds.md) is generated from RULES above and the metadata below;
# a test keeps the two naming the same fields. Descriptions only: the rules above decide.


@dataclass(frozen=True)
class FieldDoc:
    """What one field of a kind holds, in words, and which verification checks read it."""

    type: str  # a key of FIELD_TYPES
    meaning: str
    used_by: tuple[str, ...] = ()


# type -> (what values are allowed, in words; a JSON Schema of them)
FIELD_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "identifier": (
        "printable ASCII letters, digits and :._/#+- (1-200, starting with a letter or digit)",
        {"type": "string", "pattern": "^" + _IDENTIFIER.pattern + "$"},
    ),
    "text": (
        f"Unicode text, NFC-normalised, no control characters (max {MAX_TEXT})",
        {"type": "string", "maxLength": MAX_TEXT},
    ),
    "address": (
        "a 0x-prefixed 20-byte address (0x and 40 hex digits)",
        {"type": "string", "pattern": "^" + _ADDRESS.pattern + "$"},
    ),
    "quantity": (
        f"a number > 0 and <= 10^15 with at most {QUANTITY_DECIMALS} decimal places",
        {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_QUANTITY},
    ),
    "timestamp": ("unix time in seconds", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}),
    "boolean": ("true or false", {"type": "boolean"}),
    "hs_code": ("an HS code of 4 to 10 digits", {"type": "string", "pattern": "^" + _HS_CODE.pattern + "$"}),
    "country": (
        "an ISO 3166-1 alpha-2 country code (two capital letters)",
        {"type": "string", "pattern": "^" + _COUNTRY.pattern + "$"},
    ),
    "hs_codes": (
        f"a non-empty list of at most {MAX_LIST} HS codes",
        {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LIST,
            "items": {"type": "string", "pattern": "^" + _HS_CODE.pattern + "$"},
        },
    ),
    "countries": (
        f"a non-empty list of at most {MAX_LIST} ISO 3166-1 alpha-2 codes",
        {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LIST,
            "items": {"type": "string", "pattern": "^" + _COUNTRY.pattern + "$"},
        },
    ),
}

KIND_DOCS: dict[Kind, str] = {
    Kind.IP_ASSET: "A rights holder's IP asset (a design, a trade mark), committed without revealing it.",
    Kind.LICENCE: "A licence from a rights holder to a licensee over the IP assets it references.",
    Kind.PRODUCTION: (
        "A production lot made under the licences it references. An extra field `embodies` (list of IP asset "
        "UIDs) names assets the goods embody; each must be covered by a referenced licence."
    ),
    Kind.TRANSFER: "A custody hand-over of goods (all or part of the lots it references) to another party.",
    Kind.TRANSFER_ACCEPTANCE: "The recipient's acceptance of the hand-over it references.",
    Kind.SHIPMENT: "The export declaration of goods from the custody records it references.",
    Kind.REVOCATION: (
        "Withdraws the attestation it references (only that attestation's own attester may). "
        "Where withdrawing would lift a flag (another shipment of the same lot, a production under a "
        "licence's cap, a customs finding, a watch-list entry) it counts once the chain holds it with "
        "the policy's confirmations."
    ),
    Kind.CUSTOMS_FINDING: "A customs officer's signed finding about the attestation it references.",
    Kind.WATCHLIST: "A rights holder's watch list: goods classes (and destinations) to flag.",
    Kind.OBSERVATION: (
        "What a supply-chain party saw or did that moves no goods: an EPCIS event that is not a custody or "
        "ownership change (an inspection, a read, a business transaction naming no goods the ledger holds, a "
        "shipping event naming no recipient). Evidence only: it changes no custody and no lot balance. It "
        "references what it is about, if anything (never consumed)."
    ),
}

FIELD_DOCS: dict[Kind, dict[str, FieldDoc]] = {
    Kind.IP_ASSET: {"title": FieldDoc("text", "the asset's name")},
    Kind.LICENCE: {
        "licensee": FieldDoc("address", "the key address of the licensee", ("licensing",)),
        "goodsClasses": FieldDoc("hs_codes", "the goods classes licensed (HS code prefixes)", ("licensing",)),
        "territories": FieldDoc("countries", "the destinations licensed", ("licensing",)),
        "validFrom": FieldDoc("timestamp", "start of the licence's validity", ("licensing",)),
        "validUntil": FieldDoc("timestamp", "end of the licence's validity (after validFrom)", ("licensing",)),
        "quantityCap": FieldDoc("quantity", "the most goods all productions under it may total", ("licensing",)),
        "sublicensing": FieldDoc("boolean", "whether the licensee may grant sub-licences", ("licensing",)),
    },
    Kind.PRODUCTION: {
        "lot": FieldDoc("identifier", "the lot number (a GS1 key is welcome)", ("custody",)),
        "quantity": FieldDoc("quantity", "how much was produced", ("custody", "licensing")),
        "unit": FieldDoc("identifier", "the unit of quantity (pcs, kg, ...)", ("custody",)),
        "goodsClass": FieldDoc(
            "hs_code", "the HS code the goods were produced as", ("custody", "licensing", "watchlist")
        ),
    },
    Kind.TRANSFER: {
        "lot": FieldDoc("identifier", "the lot handed over", ("custody",)),
        "quantity": FieldDoc("quantity", "how much is handed over", ("custody",)),
        "unit": FieldDoc("identifier", "the unit of quantity", ("custody",)),
        "to": FieldDoc("address", "the recipient's key address (the next holder)", ("custody",)),
    },
    Kind.TRANSFER_ACCEPTANCE: {"note": FieldDoc("text", "a remark on receipt")},
    Kind.SHIPMENT: {
        "quantity": FieldDoc("quantity", "how much is exported", ("custody",)),
        "unit": FieldDoc("identifier", "the unit of quantity", ("custody",)),
        "goodsClass": FieldDoc(
            "hs_code", "the declared HS code (must equal the class produced)", ("custody", "licensing", "watchlist")
        ),
        "destination": FieldDoc("country", "the destination country", ("licensing", "watchlist")),
        "shipmentId": FieldDoc("identifier", "the exporter's own shipment reference"),
        "lot": FieldDoc("identifier", "the lot shipped, for the officer's reading"),
    },
    Kind.REVOCATION: {"reason": FieldDoc("text", "why it is withdrawn")},
    Kind.CUSTOMS_FINDING: {
        "finding": FieldDoc("identifier", "the finding's code (e.g. COUNTERFEIT)", ("prior_findings",)),
        "note": FieldDoc("text", "the officer's remark"),
        "severity": FieldDoc("identifier", "how serious (e.g. high)"),
    },
    Kind.WATCHLIST: {
        "goodsClasses": FieldDoc("hs_codes", "goods classes to watch (HS code prefixes)", ("watchlist",)),
        "territories": FieldDoc("countries", "destinations to watch (absent: every destination)", ("watchlist",)),
        "note": FieldDoc("text", "a remark"),
    },
    Kind.OBSERVATION: {
        "eventType": FieldDoc("identifier", "what was observed, e.g. the EPCIS event type (ObjectEvent, ...)"),
        "eventTime": FieldDoc("timestamp", "when it happened (the exact time and offset stay in epcisEvent)"),
        "lot": FieldDoc("identifier", "the goods observed (a lot or GS1 class key), when any"),
        "quantity": FieldDoc("quantity", "how much was observed (moves nothing)"),
        "unit": FieldDoc("identifier", "the unit of quantity"),
        "bizStep": FieldDoc("text", "the business step (a CBV bizStep, bare or as a URI)"),
    },
}
