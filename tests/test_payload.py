"""Payload commitments: disclose some fields, anyone checks them against the signature."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.payload import Disclosure, canonical_json, commit, field_hash, payload_hash

from .conftest import ReliabilityRecorder, hypothesis_cases

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
field_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


def test_any_subset_of_disclosed_fields_checks_against_the_commitment(reliability: ReliabilityRecorder) -> None:
    @settings(max_examples=80, deadline=None)
    @given(st.dictionaries(field_names, json_values, min_size=1, max_size=8), st.data())
    def prop(fields: dict[str, Any], data: st.DataObject) -> None:
        commitment = commit(fields)
        shown = data.draw(st.sets(st.sampled_from(sorted(fields))))
        disclosure = commitment.disclosure.restricted_to(shown)
        assert disclosure.problems(commitment.payload_hash) == []
        # Round trip through the wire format keeps it checkable.
        again = Disclosure.from_json(disclosure.to_json())
        assert again.problems(commitment.payload_hash) == []
        assert set(again.fields) == shown

    cases = hypothesis_cases(prop)
    reliability.record(
        "property",
        "payload commitments: random JSON fields, random disclosed subset (hypothesis)",
        cases,
        "every disclosed subset checks against the signed payload hash, also after a wire round trip",
    )


def test_a_changed_value_is_detected(reliability: ReliabilityRecorder) -> None:
    @settings(max_examples=60, deadline=None)
    @given(st.dictionaries(field_names, json_values, min_size=1, max_size=6), st.data())
    def prop(fields: dict[str, Any], data: st.DataObject) -> None:
        commitment = commit(fields)
        name = data.draw(st.sampled_from(sorted(fields)))
        new_value = data.draw(json_values.filter(lambda v: v != fields[name]))
        wire = commitment.disclosure.to_json()
        wire["fields"][name]["value"] = new_value
        problems = Disclosure.from_json(wire).problems(commitment.payload_hash)
        assert problems == [f"field {name!r} does not match its committed hash"]

    cases = hypothesis_cases(prop)
    reliability.record(
        "property",
        "payload commitments: one disclosed value changed (hypothesis)",
        cases,
        "the changed field, and only it, is named",
    )


def test_key_order_and_number_spelling_do_not_change_the_commitment() -> None:
    salt = b"\x07" * 32
    assert field_hash("x", {"a": 1, "b": [1, 2]}, salt) == field_hash("x", {"b": [1, 2], "a": 1}, salt)
    assert field_hash("q", 1.0, salt) == field_hash("q", 1, salt)


def test_a_removed_field_hash_breaks_the_payload_hash() -> None:
    commitment = commit({"lot": "LOT-1", "quantity": 100, "price": 12})
    hashes = commitment.disclosure.field_hashes
    assert payload_hash(hashes[:-1]) != commitment.payload_hash
    assert payload_hash(tuple(reversed(hashes))) == commitment.payload_hash


def test_salts_hide_small_value_spaces() -> None:
    a, b = commit({"country": "DE"}), commit({"country": "DE"})
    assert a.payload_hash != b.payload_hash


@pytest.mark.parametrize(
    "wire, message",
    [
        ({"fieldHashes": []}, "non-empty"),
        ({"fieldHashes": ["0x12"]}, "32 bytes"),
        ({"fieldHashes": ["0x" + "00" * 32], "fields": {"bad name": {"value": 1, "salt": "0x" + "00" * 32}}}, "name"),
        ({"fieldHashes": ["0x" + "00" * 32], "fields": {"a": {"value": 1}}}, "value, salt"),
        (
            {"fieldHashes": ["0x" + "00" * 32], "fields": {"a": {"value": float("nan"), "salt": "0x" + "00" * 32}}},
            "JSON",
        ),
        ({"fieldHashes": ["0x" + "00" * 32] * 2}, "duplicate"),
        ({"fieldHashes": ["0x" + "00" * 32], "extra": 1}, "unexpected"),
    ],
)
def test_malformed_disclosures_are_refused_with_the_reason(wire: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Disclosure.from_json(wire)


def test_integers_beyond_json_safe_range_are_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="safe integer"):
        commit({"quantity": 2**53})


@pytest.mark.parametrize(
    "value",
    [
        "",
        "lot:L1",
        "pcs",
        'a"b',
        "a\\b",
        "tab\there",
        "\x00",
        "\x1f",
        "\x7f",
        "café",
        "\u2028",
        0,
        -(2**53) + 1,
        2**53 - 1,
        12345,
        True,
        False,
        None,
        1.5,
        [1, "x"],
        {"b": 1, "a": "y"},
    ],
)
def test_the_direct_canonical_form_is_rfc8785s(value: Any) -> None:
    # canonical_json writes plain strings and safe integers itself: byte for byte what
    # rfc8785 writes, or every commitment to such a field would change.
    assert canonical_json(value) == rfc8785.dumps(value)


def test_canonical_json_refuses_what_rfc8785_refuses() -> None:
    for value in (2**53, -(2**53), "\ud800", float("nan")):
        with pytest.raises(ValueError, match="not canonicalisable"):
            canonical_json(value)


def test_canonical_json_matches_rfc8785_on_any_string_or_integer(reliability: ReliabilityRecorder) -> None:
    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=30) | st.integers(-(2**53) + 1, 2**53 - 1))
    def prop(value: str | int) -> None:
        assert canonical_json(value) == rfc8785.dumps(value)

    cases = hypothesis_cases(prop)
    reliability.record(
        "property",
        "canonical_json's direct path: random strings and safe integers (hypothesis)",
        cases,
        "byte for byte what rfc8785 writes",
    )
