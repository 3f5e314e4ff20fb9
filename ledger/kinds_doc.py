"""Every kind explains itself, from one source: `ledger.fields` (RULES decides, FIELD_DOCS
describes). This module renders that source for people (`provenance kinds`,
docs/kinds.md) and for programs (a JSON Schema of each kind's payload fields).

    python -m ledger.kinds_doc > docs/kinds.md
"""

from __future__ import annotations

from typing import Any

from .fields import ALWAYS_PUBLIC, FIELD_DOCS, FIELD_TYPES, KIND_DOCS, RULES, FieldDoc
from .kinds import Kind


def fields_of(kind: Kind) -> list[tuple[str, bool, FieldDoc]]:
    """(name, required, doc) of every field `kind` defines, required ones first."""
    required, optional, _lo, _hi = RULES[kind]
    docs = FIELD_DOCS[kind]
    return [(n, True, docs[n]) for n in required] + [(n, False, docs[n]) for n in optional]


def refs_text(kind: Kind) -> str:
    _req, _opt, lo, hi = RULES[kind]
    return "none" if hi == 0 else (f"exactly {lo}" if lo == hi else f"{lo} to {hi}")


def json_schema(kind: Kind) -> dict[str, Any]:
    """A JSON Schema of `kind`'s payload fields (their values, before commitment). Other
    fields are allowed (clean text or JSON of bounded depth), as the rules allow them."""
    properties: dict[str, Any] = {}
    for name, _required, doc in fields_of(kind):
        allowed, schema = FIELD_TYPES[doc.type]
        used = f" Read by the {', '.join(doc.used_by)} check(s)." if doc.used_by else ""
        properties[name] = {**schema, "description": f"{doc.meaning} ({allowed}).{used}"}
    return {
        "title": f"{kind.type_name} fields",
        "description": f"{KIND_DOCS[kind]} References: {refs_text(kind)}.",
        "type": "object",
        "properties": properties,
        "required": [n for n, required, _doc in fields_of(kind) if required],
        "additionalProperties": True,
    }


def kinds_summary() -> str:
    """One line per kind: its names, references, fields (optional ones marked ?)."""
    lines = []
    for kind in Kind:
        names = ", ".join(n + ("" if required else "?") for n, required, _d in fields_of(kind))
        lines.append(f"{kind.type_name:<19} {kind.name.lower():<20} refs {refs_text(kind):<9} {names}")
    lines.append("")
    lines.append("? optional. `provenance kinds show KIND` explains a kind's fields.")
    return "\n".join(lines)


def kind_text(kind: Kind) -> str:
    """A kind explained: what it states, references, each field's type, allowed values,
    meaning, and the verification checks that read it."""
    lines = [f"{kind.type_name} ({kind.name.lower()}): {KIND_DOCS[kind]}", f"references: {refs_text(kind)}", ""]
    for name, required, doc in fields_of(kind):
        allowed, _schema = FIELD_TYPES[doc.type]
        lines.append(f"{name}  ({'required' if required else 'optional'}, {doc.type})")
        lines.append(f"    {doc.meaning}")
        lines.append(f"    allowed: {allowed}")
        if doc.used_by:
            lines.append(f"    checked by: {', '.join(doc.used_by)}")
    lines.append("")
    if kind in ALWAYS_PUBLIC:
        public = ", ".join(sorted(ALWAYS_PUBLIC[kind]))
        lines.append(f"Always public (never confidential, so every node can read them): {public}.")
    lines.append("Required fields must be disclosed to the ledger; optional and added fields (clean text or JSON)")
    lines.append("may be kept back with `sign --disclose` and disclosed later with `provenance disclose`.")
    return "\n".join(lines)


def markdown() -> str:
    """docs/kinds.md: every kind's fields as tables."""
    out = [
        "# Attestation kinds and their fields",
        "",
        "Generated from `ledger/fields.py` (`python -m ledger.kinds_doc > docs/kinds.md`); a test keeps the two",
        "equal. The same source gives `provenance kinds`, `provenance kinds show KIND` and the JSON Schemas",
        "`<Kind>Fields` in the OpenAPI document. Fields not listed may be added (clean text or JSON of",
        "bounded depth). Required fields must be disclosed to the ledger; optional and added ones may be kept",
        "back (`sign --disclose`) and disclosed later (`provenance disclose`), but a check that needs a field",
        "kept back cannot pass (`FIELD_UNDISCLOSED`).",
        "",
    ]
    for kind in Kind:
        out += [f"## {kind.type_name} (`{kind.name.lower()}`)", "", KIND_DOCS[kind], ""]
        out += [f"References: {refs_text(kind)}.", ""]
        if kind in ALWAYS_PUBLIC:
            public = ", ".join(f"`{n}`" for n in sorted(ALWAYS_PUBLIC[kind]))
            out += [f"Always public (never confidential, so every node can read them): {public}.", ""]
        out += ["| field | required | type | allowed values | meaning | read by check |", "|---|---|---|---|---|---|"]
        for name, required, doc in fields_of(kind):
            allowed, _schema = FIELD_TYPES[doc.type]
            used = ", ".join(doc.used_by) or "–"
            out.append(
                f"| `{name}` | {'yes' if required else 'no'} | {doc.type} | {allowed.replace('|', '/')} "
                f"| {doc.meaning} | {used} |"
            )
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
