"""Attestation UIDs and signatures: our fast path agrees with eth-account and the contract."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32

from ledger.chain.accounts import dev_account
from ledger.chain.client import ChainRevert, Deployment, call_and_send
from ledger.chain.deploy import FOREVER, deploy_contract
from ledger.eip712 import Attestation, Domain, attestation_uid, parse_typed_data, typed_data
from ledger.kinds import Kind
from ledger.roles import Role
from ledger.signatures import SECP256K1_N, SignatureChecker, SignatureProblem, sign_attestation, web3_erc1271_caller

from .conftest import ReliabilityRecorder, hypothesis_cases
from .factories import random_attestation, random_domain


def eth_account_recover(attestation: Attestation, domain: Domain, signature: bytes) -> str | None:
    try:
        message = encode_typed_data(full_message=typed_data(attestation, domain))
        return str(Account.recover_message(message, signature=signature))
    except Exception:  # noqa: BLE001 - eth-account refuses some malformed signatures outright
        return None


def test_uid_equals_eth_account_eip712_digest_for_every_kind() -> None:
    rng = random.Random(7)
    for kind in Kind:
        attestation = random_attestation(rng, dev_account(2).address, kind)
        domain = random_domain(rng)
        expected = encode_typed_data(full_message=typed_data(attestation, domain))
        assert attestation_uid(attestation, domain) == keccak_of_signable(expected)


def keccak_of_signable(signable: SignableMessage) -> bytes:
    from eth_utils.crypto import keccak

    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def test_fast_signing_equals_eth_account_sign_typed_data() -> None:
    rng = random.Random(11)
    account = dev_account(3)
    for _ in range(20):
        attestation, domain = random_attestation(rng, account.address), random_domain(rng)
        ours = sign_attestation(account, attestation, domain)
        theirs = account.sign_typed_data(full_message=typed_data(attestation, domain)).signature
        assert ours == bytes(theirs)


def test_fast_checker_agrees_with_eth_account_on_many_valid_and_corrupted_signatures() -> None:
    rng = random.Random(2024)
    keys = [dev_account(i) for i in range(4)]
    checker = SignatureChecker()
    outcomes = {True: 0, False: 0}
    for i in range(400):
        key = rng.choice(keys)
        attestation, domain = random_attestation(rng, key.address), random_domain(rng)
        signature = bytearray(sign_attestation(key, attestation, domain))
        corruption = i % 4
        if corruption == 1:  # flip a byte of r or s
            signature[rng.randrange(64)] ^= 1 << rng.randrange(8)
        elif corruption == 2:  # someone else's key
            attestation = replace(attestation, attester=rng.choice(keys).address)
        elif corruption == 3:  # tamper with the message after signing
            attestation = replace(attestation, issued_at=attestation.issued_at + 1)
        result = checker.check(attestation, domain, bytes(signature))
        reference = eth_account_recover(attestation, domain, bytes(signature))
        expected_valid = reference is not None and reference == attestation.attester
        assert result.valid == expected_valid, (i, corruption, result)
        outcomes[expected_valid] += 1
    # Both answers were compared many times (untouched signatures and another attester
    # who happens to be the signer are valid; the rest are not).
    assert outcomes[True] >= 100 and outcomes[False] >= 250, outcomes


def test_signature_path_property_only_the_untouched_low_s_signature_passes(reliability: ReliabilityRecorder) -> None:
    """Hypothesis drives the fast path with arbitrary attestations, domains and one
    corruption each; the fast path must agree with eth-account, except that it refuses
    the high-s twin eth-account still recovers."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    keys = [dev_account(i) for i in range(4)]
    checker = SignatureChecker()
    tally: dict[str, int] = {}

    @settings(max_examples=150, deadline=None)
    @given(
        seed=st.integers(0, 2**32),
        key=st.sampled_from(keys),
        damage=st.sampled_from(["none", "bit", "signer", "message", "chain", "contract", "high-s", "v", "truncate"]),
        position=st.integers(0, 63),
    )
    def prop(seed: int, key: LocalAccount, damage: str, position: int) -> None:
        rng = random.Random(seed)
        attestation, domain = random_attestation(rng, key.address), random_domain(rng)
        signature = bytearray(sign_attestation(key, attestation, domain))
        if damage == "bit":
            signature[position] ^= 1 << (seed % 8)
        elif damage == "signer":
            attestation = replace(attestation, attester=keys[(keys.index(key) + 1) % 4].address)
        elif damage == "message":
            attestation = replace(attestation, payload_hash=bytes(32))
        elif damage == "chain":
            domain = Domain(domain.chain_id + 1, domain.verifying_contract)
        elif damage == "contract":
            domain = Domain(domain.chain_id, "0x" + "ee" * 20)
        elif damage == "high-s":
            s_value = int.from_bytes(signature[32:64], "big")
            signature[32:64] = (SECP256K1_N - s_value).to_bytes(32, "big")
            signature[64] = 55 - signature[64]
        elif damage == "v":
            signature[64] = 29
        elif damage == "truncate":
            signature = signature[: position % 65]
        result = checker.check(attestation, domain, bytes(signature))
        reference = eth_account_recover(attestation, domain, bytes(signature))
        if damage == "none":
            assert result.valid
        elif damage == "high-s":
            assert not result.valid and result.problem is SignatureProblem.HIGH_S
        else:
            assert not result.valid, damage
            assert reference != attestation.attester, "eth-account agrees it is not the attester's"
        tally[damage] = tally.get(damage, 0) + 1

    cases = hypothesis_cases(prop)
    assert set(tally) == {"none", "bit", "signer", "message", "chain", "contract", "high-s", "v", "truncate"}, tally
    reliability.record(
        "property",
        "signature path: random attestations and domains, one corruption each (hypothesis)",
        cases,
        "untouched signatures pass; bit flips, another signer, changed message, chainId or contract, high-s, "
        f"bad v and truncation fail (calls per corruption: {dict(sorted(tally.items()))})",
    )


def test_malleable_high_s_twin_is_refused_though_it_recovers_to_the_signer() -> None:
    rng = random.Random(5)
    key = dev_account(2)
    attestation, domain = random_attestation(rng, key.address), random_domain(rng)
    good = sign_attestation(key, attestation, domain)
    s = int.from_bytes(good[32:64], "big")
    twin = good[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - good[64]])
    assert eth_account_recover(attestation, domain, twin) == key.address  # the raw math accepts it
    result = SignatureChecker().check(attestation, domain, twin)
    assert result.problem is SignatureProblem.HIGH_S


@pytest.mark.parametrize(
    "mangle, problem",
    [
        (lambda s: s[:64], SignatureProblem.MALFORMED),
        (lambda s: s[:64] + b"\x01", SignatureProblem.BAD_V),
        (lambda s: bytes(32) + s[32:], SignatureProblem.OUT_OF_RANGE),
        (lambda s: s[:32] + SECP256K1_N.to_bytes(32, "big") + s[64:], SignatureProblem.OUT_OF_RANGE),
    ],
)
def test_truncated_and_out_of_range_signatures_are_refused(mangle, problem) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(9)
    key = dev_account(1)
    attestation, domain = random_attestation(rng, key.address), random_domain(rng)
    result = SignatureChecker().check(attestation, domain, mangle(sign_attestation(key, attestation, domain)))
    assert result.problem is problem


def test_typed_data_round_trips_and_foreign_types_are_refused() -> None:
    rng = random.Random(3)
    attestation, domain = random_attestation(rng, dev_account(0).address), random_domain(rng)
    data = typed_data(attestation, domain)
    assert parse_typed_data(data) == (attestation, domain)
    data["types"][data["primaryType"]] = data["types"][data["primaryType"]][:-1]
    with pytest.raises(ValueError, match="not the"):
        parse_typed_data(data)


def test_contract_hashes_attestations_to_the_same_uid(deployment: Deployment) -> None:
    rng = random.Random(21)
    domain = Domain(deployment.manifest.chain_id, deployment.manifest.ledger)
    for kind in Kind:
        attestation = random_attestation(rng, dev_account(2).address, kind)
        on_chain = deployment.ledger.functions.hashAttestation(attestation.contract_args()).call()
        assert bytes(on_chain) == attestation_uid(attestation, domain)


def test_contract_tables_of_kinds_and_roles_match_the_core(deployment: Deployment) -> None:
    ledger = deployment.ledger
    for kind in Kind:
        assert ledger.functions.requiredRolesOf(int(kind)).call() == int(kind.required_roles), kind
    assert ledger.functions.requiredRolesOf(0).call() == 0
    registry = deployment.registry
    # Role bits: a grant of each role through the registry reads back as that bit.
    probe = dev_account(7)
    call_and_send(deployment.w3, dev_account(0), registry.functions.admit(probe.address, b"\x01" * 32, 0, 0, FOREVER))
    for role in Role:
        call_and_send(deployment.w3, dev_account(0), registry.functions.grantRoles(probe.address, int(role)))
    assert registry.functions.participant(probe.address).call()[1] == int(Role(sum(Role)))


def test_signature_for_one_chain_or_contract_fails_on_another(deployment: Deployment) -> None:
    """A signature made for chainId X (or another ledger) is refused by the contract on Y."""
    maker = dev_account(4)
    registry, ledger, w3 = deployment.registry, deployment.ledger, deployment.w3
    call_and_send(
        w3, dev_account(0), registry.functions.admit(maker.address, b"\x02" * 32, int(Role.MANUFACTURER), 0, FOREVER)
    )
    now = deployment.now()
    attestation = Attestation(Kind.PRODUCTION, maker.address, b"\x03" * 32, (), b"\x04" * 32, now, 0)
    real = Domain(deployment.manifest.chain_id, deployment.manifest.ledger)
    for wrong in (Domain(1, deployment.manifest.ledger), Domain(real.chain_id, deployment.manifest.registry)):
        signature = sign_attestation(maker, attestation, wrong)
        assert not SignatureChecker().check(attestation, real, signature).valid
        with pytest.raises(ChainRevert, match="InvalidSignature"):
            call_and_send(w3, maker, ledger.functions.attest(attestation.contract_args(), signature))
    receipt = call_and_send(
        w3, maker, ledger.functions.attest(attestation.contract_args(), sign_attestation(maker, attestation, real))
    )
    assert receipt["status"] == 1


def test_erc1271_wallet_signatures_are_checked_by_asking_the_chain(deployment: Deployment) -> None:
    owner, stranger = dev_account(5), dev_account(6)
    wallet = deploy_contract(deployment.w3, owner, "TestERC1271Wallet", owner.address)
    attestation = Attestation(Kind.PRODUCTION, wallet, b"\x05" * 32, (), b"\x06" * 32, 1000, 0)
    domain = Domain(deployment.manifest.chain_id, deployment.manifest.ledger)
    uid = attestation_uid(attestation, domain)
    by_owner = bytes(owner.unsafe_sign_hash(Hash32(uid)).signature)
    by_stranger = bytes(stranger.unsafe_sign_hash(Hash32(uid)).signature)
    checker = SignatureChecker(web3_erc1271_caller(deployment.w3))
    assert checker.check(attestation, domain, by_owner).valid
    assert checker.check(attestation, domain, by_owner).via_erc1271
    assert checker.check(attestation, domain, by_stranger).problem is SignatureProblem.WALLET_REFUSED
    # Without a chain to ask, a wallet signature cannot be accepted.
    assert SignatureChecker().check(attestation, domain, by_owner).problem is SignatureProblem.WRONG_SIGNER
