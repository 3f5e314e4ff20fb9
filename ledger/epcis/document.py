"""Reading an EPCIS 2.0 JSON / JSON-LD document: its events, each with the key that
identifies it (its `eventID`, or GS1's canonical event hash when it has none).

Promises: `read_document` returns the events in document order or raises `DocumentError`
naming what is malformed; it never drops an event. The event hash is GS1's algorithm as
implemented by `epcis-event-hash-generator` (not re-implemented here).
"""

from __future__ import annotations

import copy
import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

MAX_EVENTS = 1_000
EVENT_TYPES = frozenset(
    {"ObjectEvent", "AggregationEvent", "TransformationEvent", "TransactionEvent", "AssociationEvent"}
)
_HASH_LOCK = threading.Lock()  # the hash generator keeps module-global namespace state


class DocumentError(ValueError):
    """The document is not an EPCIS 2.0 document this ledger can read; nothing was mapped."""


@dataclass(frozen=True)
class Event:
    """One EPCIS event as given, with its position, key and GS1 event hash."""

    index: int
    body: dict[str, Any]
    key: str
    event_hash: str

    @property
    def type(self) -> str:
        return str(self.body["type"])

    @property
    def label(self) -> str:
        """How a refusal names the event: its key and position."""
        return f"event {self.index} ({self.key})"


def read_document(document: object) -> tuple[dict[str, Any], list[Event]]:
    """The document's header (everything but its events) and its events."""
    if not isinstance(document, dict):
        raise DocumentError("expected a JSON object (an EPCISDocument)")
    if document.get("type") != "EPCISDocument":
        raise DocumentError(f"type must be EPCISDocument, not {document.get('type')!r}")
    if document.get("schemaVersion") not in ("2.0", 2.0):
        raise DocumentError(f"schemaVersion must be 2.0, not {document.get('schemaVersion')!r}")
    body = document.get("epcisBody")
    events = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(events, list) or not events:
        raise DocumentError("epcisBody.eventList must be a non-empty list of events")
    if len(events) > MAX_EVENTS:
        raise DocumentError(f"at most {MAX_EVENTS} events per document")
    for i, event in enumerate(events):
        _check_event(i, event)
    hashes = event_hashes(document)
    header = {k: v for k, v in document.items() if k != "epcisBody"}
    return header, [Event(i, e, str(e.get("eventID") or hashes[i]), hashes[i]) for i, e in enumerate(events)]


def event_hashes(document: dict[str, Any]) -> list[str]:
    """GS1's canonical event hash (`ni:///sha-256;…?ver=CBV2.0`) of each event, in order.

    Where GS1's generator fails on an event (version 1.9.3 fails on a bizTransaction
    without a type, which the standard allows), the event's key is the SHA-256 of its
    RFC 8785 canonical JSON, marked `?ver=JCS` so it is never mistaken for GS1's hash.
    """
    doc = copy.deepcopy(document)
    context = doc.get("@context")
    if isinstance(context, list):
        # The generator reads only namespace prefixes from the context and fails on term
        # definitions (objects); those do not change the canonical pre-hash string.
        doc["@context"] = [
            c if isinstance(c, str) else {k: v for k, v in c.items() if isinstance(v, str)}
            for c in context
            if isinstance(c, str | dict)
        ]
    events = doc["epcisBody"]["eventList"]
    return [_gs1_hash(doc, event) or _jcs_hash(event) for event in events]


def _gs1_hash(doc: dict[str, Any], event: dict[str, Any]) -> str | None:
    from epcis_event_hash_generator.hash_generator import epcis_hashes_from_events
    from epcis_event_hash_generator.json_to_py import event_list_from_epcis_document_json

    single = dict(doc, epcisBody={"eventList": [event]})
    with _HASH_LOCK:
        try:
            hashes = epcis_hashes_from_events(event_list_from_epcis_document_json(single))
        except Exception:  # noqa: BLE001 - the generator raises anything on input it does not expect
            return None
    return str(hashes[0]) if len(hashes) == 1 else None


def _jcs_hash(event: dict[str, Any]) -> str:
    return f"ni:///sha-256;{hashlib.sha256(rfc8785.dumps(event)).hexdigest()}?ver=JCS"


def event_time(event: dict[str, Any]) -> datetime:
    """The event's time (timezone-aware)."""
    return datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00"))


def _check_event(index: int, event: object) -> None:
    if not isinstance(event, dict):
        raise DocumentError(f"event {index}: expected an object")
    where = f"event {index} ({event.get('eventID', 'no eventID')})"
    if event.get("type") not in EVENT_TYPES:
        raise DocumentError(f"{where}: type must be one of {', '.join(sorted(EVENT_TYPES))}")
    for name in ("eventTime", "eventTimeZoneOffset"):
        if not isinstance(event.get(name), str):
            raise DocumentError(f"{where}: {name} is required")
    try:
        moment = event_time(event)
    except ValueError:
        raise DocumentError(f"{where}: eventTime {event['eventTime']!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise DocumentError(f"{where}: eventTime must carry a time zone")
    offset = event["eventTimeZoneOffset"]
    if len(offset) != 6 or offset[0] not in "+-" or offset[3] != ":" or not (offset[1:3] + offset[4:]).isdigit():
        raise DocumentError(f"{where}: eventTimeZoneOffset {offset!r} must look like +02:00")
