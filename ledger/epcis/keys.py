"""The keys by which a stored attestation records an EPCIS event, as index rows.

An attestation mapped from an EPCIS event discloses `epcisEventKey` (the eventID, or the
GS1 event hash when the event has none) and `epcisEventHash` (the GS1 event hash). Both
are indexed, hashed with SHA-256 (event ids are URIs of any length), next to the
attester: "has this signer recorded this event?" is then one index lookup. The store
writes these rows in the transaction that stores the attestation (ingest and mirror), so
the index never lags behind the attestations; migration 0008 backfilled older rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

KEY_FIELDS = ("epcisEventKey", "epcisEventHash")


def key_hash(event_key: str) -> str:
    """The indexed form of an event key."""
    return "0x" + hashlib.sha256(event_key.encode()).hexdigest()


def event_key_rows(uid: str, attester: str, public_fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of `epcis_events` for an attestation whose publicly disclosed values are
    `public_fields` (name → value); none when it records no EPCIS event."""
    keys = {v for n in KEY_FIELDS if isinstance(v := public_fields.get(n), str)}
    return [{"uid": uid, "key_hash": key_hash(k), "attester": attester.lower()} for k in sorted(keys)]
