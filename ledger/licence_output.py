"""What each licence's productions add up to, kept by the node between verifications.

Why not in each verification's evidence: a licence is shared by every production made
under it, so reading them all per verification grows with the ledger (measured with
scripts/bench_store.py: over 100 records per 10-hop shipment at 5,000 records, nearly
all of them sibling productions read only to sum a quantity cap). The node keeps, per
licence, the productions and sub-licences under it that it has already read and
checked — the UID recomputed from the row, the signature, the payload commitment — and
afterwards reads only what was stored since: productions, licences and revocations, one
cursor for all licences, an index range over the newest rows, once per verification
(`catch_up`); a licence's total is recomputed only when new rows arrived or the chain
moved.

Trust: the store is not trusted. A row that fails its check is reported (the verdict is
UNVERIFIABLE, STORE_CORRUPTED), never skipped, since skipping a production could hide an
exceeded cap. A row deleted after it was counted stays counted: over-counting is the safe
direction for a cap. Rows the store never had are the completeness check's business.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from .chain.view import ChainSnapshot
from .completeness import members_rebuilding
from .eip712 import Domain, attestation_uid
from .fields import exact_quantity
from .hashing import hex32, parse_hex
from .kinds import Kind
from .payload import Disclosure
from .sealing import Sealer
from .signatures import SignatureChecker
from .store.db import without_transaction
from .store.models import AttestationRefRow, AttestationRow, BatchRow
from .store.rows import attestation_from_row, refs_by_uid

_UNDER_A_LICENCE = [int(Kind.PRODUCTION), int(Kind.LICENCE)]
_ROWS = select(AttestationRow.__table__).where(AttestationRow.kind.in_(bindparam("kinds", expanding=True)))
# Built once (a statement made per call costs more to build than to run when it finds nothing).
# The rows of `kinds` above the cursor, each with the store's newest row id (and that id
# alone, its other columns NULL, when there are none): the newest row id and what was
# stored up to it, in one statement (one snapshot on PostgreSQL) and one round trip.
_NEWEST = select(func.max(AttestationRow.id).label("newest")).subquery("newest")
_NEWER = (
    select(_NEWEST.c.newest, *AttestationRow.__table__.c)
    .select_from(
        _NEWEST.outerjoin(
            AttestationRow.__table__,
            and_(
                AttestationRow.kind.in_(bindparam("kinds", expanding=True)),
                AttestationRow.id > bindparam("above"),
            ),
        )
    )
    .order_by(AttestationRow.id)
)
_CHILDREN = (
    select(AttestationRow.__table__)
    .join(AttestationRefRow.__table__, AttestationRefRow.uid == AttestationRow.uid)
    .where(
        AttestationRefRow.ref == bindparam("licence"),
        AttestationRow.kind.in_(bindparam("kinds", expanding=True)),
        AttestationRow.id > bindparam("above"),
        AttestationRow.id <= bindparam("upto"),
    )
    .order_by(AttestationRow.id)
)
_LICENCES = (
    select(AttestationRow.uid)
    .where(AttestationRow.kind == bindparam("kind"), AttestationRow.id <= bindparam("upto"))
    .order_by(AttestationRow.id)
)
# Where a stored revocation is anchored, as the store says (its batch); the batch's members
# must then rebuild the root the chain holds for it.
_ANCHOR_OF = (
    select(AttestationRow.batch_id, BatchRow.chain_index, BatchRow.root)
    .outerjoin(BatchRow.__table__, BatchRow.id == AttestationRow.batch_id)
    .where(AttestationRow.uid == bindparam("uid"))
)
_MEMBERS_KEPT = 8  # batches' member sets (up to 4,096 UIDs each)
_PROVEN_KEPT = 65_536
_BETWEEN = _ROWS.where(AttestationRow.id > bindparam("above"), AttestationRow.id <= bindparam("below")).order_by(
    AttestationRow.id
)


@dataclass
class LicenceChildren:
    """What a licence's stored children are, as far as read."""

    last_id: int = 0
    productions: dict[str, tuple[str, Fraction]] = field(default_factory=dict)  # uid -> (attester, quantity)
    # attester -> the sum of its productions above (revoked or not), kept as they are added,
    # so a licence's total is not summed again over every production when the chain moves.
    sums: dict[str, Fraction] = field(default_factory=dict)
    # attester -> how many productions above it made
    counts: dict[str, int] = field(default_factory=dict)
    sublicences: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (licensor, licensee)
    corrupt: dict[str, str] = field(default_factory=dict)  # uid -> why its row fails its check


@dataclass(frozen=True)
class Output:
    """What counts against one licence's cap directly (sub-licences apart)."""

    total: Fraction
    claims: tuple[tuple[str, str], ...]  # (production, claimant) by others than the licensee
    corrupt: dict[str, str]


class LicenceOutputs:
    """Per-licence running view of productions and sub-licences (thread-safe)."""

    def __init__(
        self, sessions: sessionmaker[Session], domain: Domain, checker: SignatureChecker, sealer: Sealer
    ) -> None:
        self._sessions = sessions
        # A catch-up without the caller's connection reads through a plain one, outside a
        # transaction: a session around it cost as much as the read itself.
        self._engine: Engine = without_transaction(sessions.kw["bind"])
        self._domain = domain
        self._checker = checker
        self._sealer = sealer
        self._lock = threading.Lock()
        self._seen: dict[str, LicenceChildren] = {}
        # Every production, licence and revocation up to this row id was read for the
        # licences kept (None: not yet read; set to the store's newest row on first use).
        self._cursor: int | None = None
        self._revocations = 0  # how many checked stored revocations were read (a version)
        # uid -> attester -> its checked stored revocations of that uid
        self._stored_revokers: dict[str, dict[str, set[str]]] = {}
        self._outputs: dict[str, tuple[tuple[object, ...], Output]] = {}
        # Stored revocations proven to be in an anchored batch: uid -> (chain index, root);
        # and the members of batches whose stored members rebuilt the chain's root. Both
        # bounded, and like the completeness monitor's rebuilds, per process: proving
        # anew at every block would let anyone who revokes many records cost every
        # verification a batch rebuild per revocation.
        self._proven: dict[str, tuple[int, str]] = {}
        self._members: dict[tuple[int, str], frozenset[str] | None] = {}
        self._stale: str | None = None  # why the last catch-up failed

    def catch_up(self, conn: Connection | None = None) -> int:
        """Read what was stored since the last call: productions and licences (added to the
        licences kept, whatever licence they are under) and revocations — one index range
        over the newest rows, whatever the ledger's size — and return the store's newest
        row id as of that read (the same statement). The first call reads every stored
        revocation once. Verification calls this once per verdict, through the connection
        that reads its evidence when there is one (`conn`), else through a connection of
        its own; `children`, `output` and `revoked` then answer as of that call (and read
        a licence's children the first time it is asked for)."""
        with self._lock:
            try:
                with contextlib.ExitStack() as stack:
                    if conn is None:
                        conn = stack.enter_context(self._engine.connect())
                    if self._cursor is None:
                        newest = int(conn.scalar(select(func.max(AttestationRow.id))) or 0)
                        self._read(conn, [int(Kind.REVOCATION)], below=newest)
                        self._cursor = newest
                    newest = self._read(conn, [*_UNDER_A_LICENCE, int(Kind.REVOCATION)], above=self._cursor)
            except Exception as exc:
                # Until a catch-up succeeds, every answer raises: never one from a stale view.
                self._stale = f"the store could not be read: {type(exc).__name__}: {exc}"
                raise
            self._stale = None
            return newest

    def _read(self, conn: Connection, kinds: list[int], *, above: int = 0, below: int | None = None) -> int:
        """Read and keep the rows of `kinds` with ids above `above` (up to `below`, when
        given; else up to the newest, and advance the cursor); returns the newest row id
        of the store (with `below`: `below`)."""
        # Core rows: the ORM's objects cost more than the read
        if below is None:
            found = conn.execute(_NEWER, {"kinds": kinds, "above": above}).all()
            newest = int(found[0].newest or 0) if found else 0
            rows = [row for row in found if row.id is not None]
        else:
            rows = list(conn.execute(_BETWEEN, {"kinds": kinds, "above": above, "below": below}))
            newest = below
        if not rows:
            return newest
        refs = refs_by_uid(conn, [r.uid for r in rows])
        for row in rows:
            if below is None:
                self._cursor = max(self._cursor or 0, row.id)
            mine = refs.get(row.uid, [])
            if row.kind == int(Kind.REVOCATION):
                self._add_revocation(row, mine)
                continue
            for target in dict.fromkeys(mine):
                if target in self._seen:
                    self._add(self._seen[target], row, mine)
        return newest

    def children(self, licence_uid: str) -> LicenceChildren:
        """The productions and sub-licences referencing `licence_uid`, as of the last
        `catch_up`. A licence's children are read the first time it is asked for (an
        index range over the references to it, each row checked); after that, `catch_up`
        adds what arrives: the cost of a call does not grow with the productions made
        under the licence."""
        if self._cursor is None:
            self.catch_up()
        self._fresh()
        with self._lock:
            seen = self._seen.get(licence_uid)
            if seen is not None:
                return seen
            upto = self._cursor
        # Read and checked outside the lock (the long part: every row's signature), so
        # other verifications and a warm-up reading other licences are not held up.
        seen = LicenceChildren()
        self._read_children(seen, licence_uid, 0, upto)
        with self._lock:
            kept = self._seen.get(licence_uid)
            if kept is not None:  # another thread read it meanwhile
                return kept
            if self._cursor is not None and self._cursor != upto:
                # A catch-up meanwhile read newer rows for the licences kept, not this one.
                self._read_children(seen, licence_uid, upto or 0, self._cursor)
            self._seen[licence_uid] = seen  # kept only once wholly read: never a partial view
            return seen

    def _read_children(self, seen: LicenceChildren, licence_uid: str, above: int, upto: int | None) -> None:
        """Add the productions and sub-licences under `licence_uid` with row ids in
        (`above`, `upto`] to `seen`, each row checked."""
        with self._sessions() as session:
            conn = session.connection()
            rows = conn.execute(
                _CHILDREN, {"licence": licence_uid, "kinds": _UNDER_A_LICENCE, "above": above, "upto": upto or 0}
            ).all()
            refs = refs_by_uid(conn, [r.uid for r in rows])
        for row in rows:
            self._add(seen, row, refs.get(row.uid, []))

    def warm(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Read and check the children of every licence stored now, as the first
        `children` call for each would (so no verification pays for it later), calling
        `progress(done, licences)` after each; returns how many licences were read.
        Safe while verifications run: what they read meanwhile is kept once."""
        if self._cursor is None:
            self.catch_up()
        with self._sessions() as session:
            found = session.connection().execute(_LICENCES, {"kind": int(Kind.LICENCE), "upto": self._cursor or 0})
            licences = list(found.scalars())
        for done, uid in enumerate(licences, 1):
            self.children(uid)
            if progress is not None:
                progress(done, len(licences))
        return len(licences)

    def _fresh(self) -> None:
        if self._stale is not None:
            raise RuntimeError(self._stale)

    def _add(self, seen: LicenceChildren, row: Any, refs: list[str]) -> None:
        """Check one production or sub-licence row and keep what counts (or why it fails)."""
        seen.last_id = max(seen.last_id, row.id)
        fields, problem = self._checked_fields(row, refs)
        if problem is not None:
            seen.corrupt[row.uid] = problem
        elif row.kind == int(Kind.PRODUCTION):
            amount = exact_quantity(fields.get("quantity"))
            if amount is None:
                seen.corrupt[row.uid] = "the production's quantity is missing or not allowed"
            elif row.uid not in seen.productions:
                attester = row.attester.lower()
                seen.productions[row.uid] = (attester, amount)
                seen.sums[attester] = seen.sums.get(attester, Fraction(0)) + amount
                seen.counts[attester] = seen.counts.get(attester, 0) + 1
        else:
            seen.sublicences[row.uid] = (row.attester.lower(), str(fields.get("licensee", "")).lower())

    def _add_revocation(self, row: Any, refs: list[str]) -> None:
        """A stored revocation that passes its check counts (not counting one that fails
        can only over-count)."""
        _fields, problem = self._checked_fields(row, refs)
        if problem is None:
            self._revocations += 1
            for target in refs:
                self._stored_revokers.setdefault(target, {}).setdefault(row.attester.lower(), set()).add(row.uid)

    def revoked(self, uid: str, attester: str, snapshot: ChainSnapshot, final: Callable[[int], bool]) -> bool:
        """True when `attester` revoked `uid` and the chain holds that revocation in a block
        `final` accepts: directly, or in an anchored batch the store holds it in (as of
        the last `catch_up`; a stored revocation that fails its check is not counted).
        Withdrawing a production or sub-licence makes room under a cap, so a revocation
        counts only once it is on chain."""
        self._fresh()
        block = snapshot.revocation_block(uid, attester)
        if block is not None and final(block):
            return True
        for revocation in self._stored_revokers.get(uid, {}).get(attester, ()):
            block = self._anchor_block(revocation, attester, snapshot)
            if block is not None and final(block):
                return True
        return False

    def _anchor_block(self, revocation: str, attester: str, snapshot: ChainSnapshot) -> int | None:
        """The block that anchors a stored revocation on chain, or None."""
        direct = snapshot.direct(revocation)
        if direct is not None and direct[0] == attester:
            return direct[1]
        proven = self._proven.get(revocation)
        if proven is not None:
            on_chain = snapshot.batch(proven[0])
            return on_chain[1] if on_chain is not None and on_chain[0] == proven[1] else None
        with self._sessions() as session:
            row = session.execute(_ANCHOR_OF, {"uid": revocation}).first()
            if row is None or row.chain_index is None:
                return None
            on_chain = snapshot.batch(row.chain_index)
            if on_chain is None or on_chain[0] != row.root:
                return None
            # The store's word that the revocation is in that batch is not enough (an
            # administrator can file a row under any batch): its members must rebuild the
            # chain's root.
            key = (row.batch_id, on_chain[0])
            if key not in self._members:
                if len(self._members) >= _MEMBERS_KEPT:
                    self._members.clear()
                self._members[key] = members_rebuilding(session, row.batch_id, on_chain[0])
            members = self._members[key]
        if members is None or revocation not in members:
            return None
        if len(self._proven) >= _PROVEN_KEPT:
            self._proven.clear()
        self._proven[revocation] = (row.chain_index, on_chain[0])
        return on_chain[1]

    def output(
        self, licence_uid: str, licensee: str, snapshot: ChainSnapshot, final: Callable[[int], bool], rule: object
    ) -> Output:
        """The quantity `licensee` produced directly under the licence and did not revoke
        (see `revoked`: `final` says whether a block is final under the policy, whose
        `rule` is part of the cache key), the productions others claimed under it, and
        the rows that fail their check — recomputed only when new rows arrived or the
        chain moved."""
        kept = self.children(licence_uid)
        key = (licence_uid, licensee, kept.last_id, self._revocations, snapshot.head, rule)
        with self._lock:
            cached = self._outputs.get(licence_uid)
            if cached is not None and cached[0] == key:
                return cached[1]
        # The licensee's running sum less its revoked productions, and the productions of
        # anyone else: the work grows with the revocations and the claims, not with the
        # productions made under the licence.
        revoked: set[str] = set()
        for uid in self._stored_revokers.keys() | snapshot.revoked_uids():
            found = kept.productions.get(uid)
            if found is not None and self.revoked(uid, found[0], snapshot, final):
                revoked.add(uid)
        total = kept.sums.get(licensee, Fraction(0))
        for uid in revoked:
            attester, amount = kept.productions[uid]
            if attester == licensee:
                total -= amount
        claims: list[tuple[str, str]] = []
        if any(n for attester, n in kept.counts.items() if attester != licensee):
            claims = [
                (uid, attester)
                for uid, (attester, _amount) in kept.productions.items()
                if attester != licensee and uid not in revoked
            ]
        result = Output(total, tuple(claims), dict(kept.corrupt))
        with self._lock:
            self._outputs[licence_uid] = (key, result)
        return result

    def _checked_fields(self, row: Any, refs: list[str]) -> tuple[dict[str, object], str | None]:
        """The row's disclosed (and sealed) field values, and why it fails its check, if it does."""
        try:
            attestation = attestation_from_row(row, refs)
            if Domain(row.chain_id, row.contract) != self._domain:
                return {}, "signed for another ledger"
            uid = attestation_uid(attestation, self._domain)
            if hex32(uid) != row.uid:
                return {}, "the stored record does not hash to its UID"
            if not self._checker.check_digest(
                uid, attestation.attester, parse_hex(row.signature, 65, "signature")
            ).valid:
                return {}, "the stored signature does not belong to the attester"
            stored: dict[str, object] = json.loads(row.disclosed)
            if row.sealed is not None:
                stored.update(self._sealer.open(row.sealed, uid))
            disclosure = Disclosure.from_json({"fieldHashes": json.loads(row.field_hashes), "fields": stored})
            problems = disclosure.problems(attestation.payload_hash)
            if problems:
                return {}, "; ".join(problems)
            return {name: f.value for name, f in disclosure.fields.items()}, None
        except Exception as exc:  # noqa: BLE001 - an unreadable row is a corrupted row
            return {}, f"the stored row cannot be read back: {type(exc).__name__}"
