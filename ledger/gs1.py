"""GS1 keys — GTIN, SGTIN, LGTIN, SSCC, GLN/SGLN, PGLN (and other keys GS1 defines) — read
from EPC URNs or GS1 Digital Link URIs, check digits verified, in one canonical form.

Promises:
- `parse_key` accepts an EPC pure-identity or class URN (`urn:epc:id:sgtin:…`,
  `urn:epc:class:lgtin:…`, `urn:epc:idpat:sgtin:P.I.*`), a GS1 Digital Link URI on any
  host, or a bracketed GS1 element string, and returns the same `GS1Key` for the same goods
  whatever the spelling. A key whose check digit is wrong raises `GS1KeyError` with a
  reason that says so (`reason == "check_digit"`).
- `GS1Key.canonical` is the GS1 canonical Digital Link URI (`https://id.gs1.org/01/…`):
  it needs no company-prefix length, so two spellings cannot canonicalise differently.
  It is what the ledger commits to as a lot or item identifier.
- `to_epc_urn` converts a canonical key back to its EPC URN exactly (the company-prefix
  length taken from GS1's prefix table, as biip knows it, unless one is given).

No parser is written here: biip reads Digital Link URIs and element strings and checks
digits; epcpy converts EPC URNs to and from GS1 element strings (Tag Data Standard).
This module only decides which key is which and what the canonical form is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString
from biip.gs1_messages import GS1Message
from epcpy import ConvertException, epc_pure_identity_to_gs1_element_string
from epcpy.epc_schemes import GIAI, GRAI, GSRN, LGTIN, PGLN, SGLN, SGTIN, SSCC

# Application identifiers of the primary keys this module names, with the EPC scheme.
_SCHEMES = {"00": "sscc", "01": "gtin", "414": "gln", "417": "pgln", "8003": "grai", "8004": "giai", "8018": "gsrn"}
_IDPAT_SGTIN = re.compile(r"urn:epc:idpat:sgtin:([0-9]+)\.([0-9]+)\.\*")
_CHECKED = ("gtin", "gln", "sscc")


class GS1KeyError(ValueError):
    """A text is not a GS1 key this ledger reads. `reason` is `check_digit`, `syntax` or
    `unsupported`; the message names the key and what is wrong with it."""

    def __init__(self, text: str, reason: str, detail: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"{text!r}: {detail}")


@dataclass(frozen=True)
class GS1Key:
    """One GS1-identified thing (an item, a class of goods, a logistic unit, a place).

    `scheme` is the EPC scheme name (`sgtin`, `lgtin`, `gtin`, `sscc`, `sgln`, `gln`,
    `pgln`, ...); `canonical` the canonical Digital Link URI; `class_key` the canonical
    URI of the class the thing belongs to (the GTIN, or GTIN + lot for an LGTIN; the key
    itself for other schemes); `element_string` the bracketed GS1 element string.
    """

    scheme: str
    canonical: str
    class_key: str
    element_string: str

    @property
    def is_class(self) -> bool:
        """True when the key names a class of goods (GTIN, LGTIN), not one instance."""
        return self.scheme in ("gtin", "lgtin")


def parse_key(text: str) -> GS1Key:
    """The GS1 key spelt by `text` (EPC URN, Digital Link URI or element string)."""
    if not isinstance(text, str) or not text:
        raise GS1KeyError(str(text), "syntax", "expected a GS1 key as text")
    if text.startswith("urn:epc:idpat:sgtin:"):
        return _from_idpat(text)
    if text.startswith(("urn:epc:id:", "urn:epc:class:")):
        try:
            element_string = epc_pure_identity_to_gs1_element_string(text)
        except (ConvertException, ValueError) as exc:
            raise GS1KeyError(text, "syntax", f"not an EPC URN this ledger reads: {exc}") from None
        return _from_elements(text, GS1Message.parse_hri(element_string).element_strings)
    if text.startswith(("http://", "https://")):
        try:
            link = GS1DigitalLinkURI.parse(text)
        except ParseError as exc:
            raise _refusal(text, exc) from None
        return _from_elements(text, link.element_strings)
    if text.startswith("("):
        try:
            return _from_elements(text, GS1Message.parse_hri(text).element_strings)
        except ParseError as exc:
            raise _refusal(text, exc) from None
    raise GS1KeyError(text, "unsupported", "expected an EPC URN, a GS1 Digital Link URI or a GS1 element string")


def canonical(text: str) -> str:
    """The canonical Digital Link URI of the key spelt by `text`."""
    return parse_key(text).canonical


def to_epc_urn(key: GS1Key | str, company_prefix_length: int | None = None) -> str:
    """The EPC URN of `key` (pure identity, or class URN for a GTIN + lot)."""
    key = parse_key(key) if isinstance(key, str) else key
    elements = GS1Message.parse_hri(key.element_string).element_strings
    length = company_prefix_length or _company_prefix_length(key, elements[0])
    es = key.element_string
    if key.scheme == "gtin":
        gtin = elements[0].value
        prefix, item = gtin[1 : 1 + length], gtin[0] + gtin[1 + length : 13]
        return f"urn:epc:idpat:sgtin:{prefix}.{item}.*"
    scheme_type = {
        "sgtin": SGTIN,
        "lgtin": LGTIN,
        "sscc": SSCC,
        "sgln": SGLN,
        "gln": SGLN,
        "pgln": PGLN,
        "grai": GRAI,
        "giai": GIAI,
        "gsrn": GSRN,
    }.get(key.scheme)
    if scheme_type is None:
        raise GS1KeyError(key.canonical, "unsupported", f"no EPC URN for a {key.scheme} key")
    if key.scheme == "gln":
        es += "(254)0"  # an SGLN without extension: the Tag Data Standard's extension 0
    return str(scheme_type.from_gs1_element_string(es, company_prefix_length=length).epc_uri)


def _from_idpat(text: str) -> GS1Key:
    match = _IDPAT_SGTIN.fullmatch(text)
    if match is None:
        raise GS1KeyError(text, "syntax", "expected urn:epc:idpat:sgtin:<company prefix>.<item reference>.*")
    prefix, item = match.groups()
    if len(prefix) + len(item) != 13 or not item:
        raise GS1KeyError(text, "syntax", "company prefix and item reference must together have 13 digits")
    body = item[0] + prefix + item[1:]
    gtin = body + str(_check_digit(body))
    return _from_elements(text, GS1Message.parse_hri(f"(01){gtin}").element_strings)


def _check_digit(digits: str) -> int:
    """GS1 mod-10 check digit; only for GTINs built from an EPC pattern, which carries none."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def _from_elements(text: str, elements: list[GS1ElementString]) -> GS1Key:
    for element in elements:
        for name in _CHECKED:
            error = getattr(element, f"{name}_error", None)
            if error:
                raise GS1KeyError(text, "check_digit" if "check digit" in str(error).lower() else "syntax", error)
    by_ai = {e.ai.ai: e.value for e in elements}
    primary = next((ai for ai in by_ai if ai in _SCHEMES), None)
    if primary is None:
        raise GS1KeyError(text, "unsupported", "names no GS1 primary key (GTIN, SSCC, GLN, PGLN, GRAI, GIAI, GSRN)")
    scheme = _SCHEMES[primary]
    parts = [(primary, by_ai[primary])]
    if primary == "01" and "21" in by_ai:
        scheme = "sgtin"
        parts.append(("21", by_ai["21"]))
    elif primary == "01" and "10" in by_ai:
        scheme = "lgtin"
        parts.append(("10", by_ai["10"]))
    elif primary == "414" and by_ai.get("254", "0") != "0":
        scheme = "sgln"  # extension 0 is "no extension" (Tag Data Standard)
        parts.append(("254", by_ai["254"]))
    element_string = "".join(f"({ai}){value}" for ai, value in parts)
    link = GS1DigitalLinkURI.from_element_strings(GS1Message.parse_hri(element_string).element_strings)
    uri = link.as_canonical_uri()
    class_parts = parts[:1] if scheme == "sgtin" else parts
    class_uri = (
        GS1DigitalLinkURI.from_element_strings(
            GS1Message.parse_hri("".join(f"({ai}){v}" for ai, v in class_parts)).element_strings
        ).as_canonical_uri()
        if class_parts != parts
        else uri
    )
    return GS1Key(scheme, uri, class_uri, element_string)


def _company_prefix_length(key: GS1Key, element: GS1ElementString) -> int:
    for name in ("gtin", "gln", "sscc"):
        value = getattr(element, name, None)
        prefix = getattr(value, "company_prefix", None) if value is not None else None
        if prefix is not None and getattr(prefix, "value", None):
            return len(prefix.value)
    raise GS1KeyError(key.canonical, "unsupported", "the company prefix length is unknown; give it explicitly")


def _refusal(text: str, exc: Exception) -> GS1KeyError:
    message = str(exc)
    return GS1KeyError(text, "check_digit" if "check digit" in message.lower() else "syntax", message)
