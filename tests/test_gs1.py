"""GS1 keys: one canonical form for the same goods in any spelling, check digits verified."""

from __future__ import annotations

import pytest

from ledger.gs1 import GS1KeyError, canonical, parse_key, to_epc_urn


@pytest.mark.parametrize(
    "epc_urn, digital_link",
    [
        ("urn:epc:id:sgtin:0614141.107346.2017", "https://id.gs1.org/01/10614141073464/21/2017"),
        ("urn:epc:class:lgtin:4012345.012345.998877", "https://id.gs1.org/01/04012345123456/10/998877"),
        ("urn:epc:id:sscc:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        ("urn:epc:id:sgln:0614141.07346.1234", "https://id.gs1.org/414/0614141073467/254/1234"),
        ("urn:epc:id:sgln:0614141.00777.0", "https://id.gs1.org/414/0614141007776"),
        ("urn:epc:id:pgln:0614141.00001", "https://id.gs1.org/417/0614141000012"),
        ("urn:epc:idpat:sgtin:4012345.098765.*", "https://id.gs1.org/01/04012345987652"),
    ],
)
def test_epc_urn_and_digital_link_convert_exactly_both_ways(epc_urn: str, digital_link: str) -> None:
    assert canonical(epc_urn) == digital_link
    assert canonical(digital_link) == digital_link
    assert to_epc_urn(digital_link) == epc_urn


def test_same_goods_under_any_spelling_have_one_canonical_key() -> None:
    spellings = [
        "urn:epc:id:sgtin:0614141.107346.2017",
        "https://id.gs1.org/01/10614141073464/21/2017",
        "https://brand.example.com/01/10614141073464/21/2017?linkType=all",
        "(01)10614141073464(21)2017",
    ]
    assert {canonical(s) for s in spellings} == {"https://id.gs1.org/01/10614141073464/21/2017"}


def test_short_gtins_are_the_same_goods_as_their_gtin_14() -> None:
    assert canonical("https://id.gs1.org/01/614141073467") == canonical("https://id.gs1.org/01/00614141073467")


def test_item_belongs_to_its_gtin_class() -> None:
    key = parse_key("urn:epc:id:sgtin:0614141.107346.2017")
    assert key.scheme == "sgtin" and key.class_key == "https://id.gs1.org/01/10614141073464" and not key.is_class


@pytest.mark.parametrize(
    "wrong",
    [
        "https://id.gs1.org/01/10614141073465/21/2017",  # GTIN ends 4
        "https://id.gs1.org/00/106141412345678909",  # SSCC ends 8
        "https://id.gs1.org/414/0614141073468",  # GLN ends 7
        "(01)04012345123457(10)998877",
    ],
)
def test_wrong_check_digit_is_refused_saying_so(wrong: str) -> None:
    with pytest.raises(GS1KeyError) as refused:
        parse_key(wrong)
    assert refused.value.reason == "check_digit" and "check digit" in str(refused.value)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("LOT-42", "unsupported"),
        ("urn:epc:id:sgtin:0614141.10734.2017", "syntax"),
        ("urn:epc:idpat:sgtin:0614141.1.*", "syntax"),
        ("urn:epc:id:gdti:95252084.0001.0003555480001000", "unsupported"),
        ("", "syntax"),
    ],
)
def test_texts_that_are_not_gs1_keys_are_refused(text: str, reason: str) -> None:
    with pytest.raises(GS1KeyError) as refused:
        parse_key(text)
    assert refused.value.reason == reason
