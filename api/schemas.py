"""Request and response models: what the OpenAPI document shows, with examples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ledger.kinds import Kind
from ledger.kinds_doc import json_schema

EXAMPLE_SUBMISSION: dict[str, Any] = {
    "typedData": {
        "domain": {
            "name": "ProvenanceLedger",
            "version": "1",
            "chainId": 31337,
            "verifyingContract": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        },
        "types": {
            "Production": [
                {"name": "attester", "type": "address"},
                {"name": "subject", "type": "bytes32"},
                {"name": "refs", "type": "bytes32[]"},
                {"name": "payloadHash", "type": "bytes32"},
                {"name": "issuedAt", "type": "uint64"},
                {"name": "expiresAt", "type": "uint64"},
            ]
        },
        "primaryType": "Production",
        "message": {
            "attester": "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
            "subject": "0x" + "ab" * 32,
            "refs": [],
            "payloadHash": "0x" + "cd" * 32,
            "issuedAt": 1795800000,
            "expiresAt": 0,
        },
    },
    "signature": "0x" + "11" * 65,
    "payload": {"fieldHashes": ["0x" + "ef" * 32], "fields": {"lot": {"value": "LOT-42", "salt": "0x" + "12" * 32}}},
    "confidential": [],
}


class Submission(BaseModel):
    """A signed attestation: EIP-712 typed data, signature, and the payload disclosure."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_SUBMISSION]})

    typedData: dict[str, Any] = Field(description="Full EIP-712 typed data (domain, types, primaryType, message)")
    signature: str = Field(description="65-byte signature, 0x-hex (r, s, v); high-s is refused", max_length=140)
    payload: dict[str, Any] = Field(description="All field hashes and the disclosed fields with their salts")
    confidential: list[str] = Field(
        default_factory=list, max_length=64, description="Disclosed fields to store encrypted at rest"
    )
    uid: str | None = Field(default=None, max_length=66, description="Optional: checked against the computed UID")


class SubmissionResult(BaseModel):
    status: str = Field(description="created, exists or rejected", examples=["created"])
    uid: str | None = None
    reason: str | None = Field(default=None, description="reason code when rejected")
    field: str | None = None
    detail: str | None = None
    errors: list[dict[str, str]] | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="every problem when there are several: {field, reason, detail}",
    )


class BatchResult(BaseModel):
    results: list[SubmissionResult]
    created: int
    existing: int
    rejected: int


class Verification(BaseModel):
    """A verdict with the findings behind it (see /v1/reason-codes)."""

    shipment: str
    verdict: str = Field(examples=["VERIFIED"])
    riskScore: int = Field(ge=0, le=100)
    reasons: list[str]
    findings: list[dict[str, Any]]
    notices: list[dict[str, Any]] = Field(
        default_factory=list,
        description="informational findings that do not bear on this verdict (e.g. third parties' NOT_ENTITLED claims)",
    )
    checks: list[dict[str, Any]]
    riskFactors: list[dict[str, Any]]
    evaluatedAt: int
    parties: list[dict[str, Any]] = Field(
        default_factory=list,
        description="every party the evidence names: address, and the name it was admitted under as "
        "published on chain (checked against its participant id), or null with nameVerified false",
    )


def _kind_fields_model(kind: Kind) -> type[BaseModel]:
    """A model whose OpenAPI schema (`<Kind>Fields` in components) is the kind's JSON
    Schema from `ledger.kinds_doc`; validation is left to the kind's rules, which name
    every problem at once."""
    schema = json_schema(kind)

    def published(target: dict[str, Any]) -> None:
        target.clear()
        target.update(schema)

    model: type[BaseModel] = create_model(
        f"{kind.type_name}Fields", __config__=ConfigDict(extra="allow", json_schema_extra=published)
    )
    return model


KIND_FIELD_MODELS: dict[Kind, type[BaseModel]] = {kind: _kind_fields_model(kind) for kind in Kind}


class FieldProblem(BaseModel):
    field: str
    reason: str = Field(examples=["FIELD_INVALID"])
    detail: str


class KindCheck(BaseModel):
    """Whether payload fields obey a kind's rules, with every problem at once."""

    kind: str = Field(examples=["Shipment"])
    valid: bool
    errors: list[FieldProblem]
