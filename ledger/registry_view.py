"""Who held which role when, answered from the indexed registry history.

Mirrors the registry contract's `rolesAt` exactly (validity window of the key's latest
record, effective roles of the checkpoint in force at the time, see `checkpoint_at`;
several changes within one second are already merged by the contract, failing closed,
into the checkpoint of that second), and also says
*why* a key had no role: unknown, outside its window or rotated out, or suspended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .reasons import Reason
from .roles import Role
from .store.models import RoleCheckpointRow


@dataclass(frozen=True, slots=True)
class Checkpoint:
    since: int
    roles: int
    granted: int
    suspended: bool
    retired: bool
    valid_from: int
    valid_until: int

    @classmethod
    def from_event(cls, args: Mapping[str, Any]) -> Checkpoint:
        """The checkpoint an `EffectiveRolesChanged` event's arguments record."""
        return cls(
            int(args["since"]),
            int(args["roles"]),
            int(args["granted"]),
            bool(args["suspended"]),
            bool(args["retired"]),
            int(args["validFrom"]),
            int(args["validUntil"]),
        )


def checkpoint_at(history: list[Checkpoint], at: int) -> Checkpoint | None:
    """The checkpoint in force at `at`: the greatest `since` <= `at`, the last one among equal `since`.

    `history` is in event order, and `since` is not monotonic in it: when a key changes
    twice within one second T, the registry emits (T, the intersection of the states of T)
    then (T+1, the latest state), and a third change in T emits both again. A later event
    with an equal `since` replaces an earlier one.
    """
    found: Checkpoint | None = None
    for checkpoint in history:
        if checkpoint.since <= at and (found is None or checkpoint.since >= found.since):
            found = checkpoint
    return found


@dataclass(frozen=True, slots=True)
class Standing:
    """The registry's answer for one key at one time."""

    roles: Role
    problem: Reason | None  # None when the key could sign at that time (roles may still be empty)

    def allows(self, required: Role) -> Reason | None:
        """The reason a key with this standing may not sign something needing `required`."""
        if self.problem is not None:
            return self.problem
        return None if self.roles & required else Reason.ROLE_MISSING


class RegistryView:
    """Answers role questions from the `role_checkpoints` table (filled by the indexer)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._cache: dict[str, list[Checkpoint]] = {}
        self._generation = 0

    def invalidate(self) -> None:
        """Forget cached histories (after the indexer stored new checkpoints)."""
        self._generation += 1
        self._cache.clear()

    def history(self, account: str) -> list[Checkpoint]:
        key = account.lower()
        cached = self._cache.get(key)
        if cached is None:
            generation = self._generation
            with self._sessions() as session:
                rows = session.scalars(
                    select(RoleCheckpointRow).where(RoleCheckpointRow.account == key).order_by(RoleCheckpointRow.id)
                ).all()
            cached = [
                Checkpoint(r.since, r.roles, r.granted, bool(r.suspended), bool(r.retired), r.valid_from, r.valid_until)
                for r in rows
            ]
            # A read that overlapped an invalidation may predate the new rows: use it for
            # this answer, but do not keep it.
            if generation == self._generation:
                self._cache[key] = cached
        return cached

    def standing(self, account: str, at: int) -> Standing:
        """The standing of `account` at unix time `at`."""
        history = self.history(account)
        if not history:
            return Standing(Role(0), Reason.UNKNOWN_ATTESTER)
        latest = history[-1]
        if not latest.valid_from <= at < latest.valid_until:
            return Standing(Role(0), Reason.KEY_NOT_VALID)
        checkpoint = checkpoint_at(history, at)
        if checkpoint is None:
            return Standing(Role(0), Reason.KEY_NOT_VALID)
        if checkpoint.retired:
            return Standing(Role(0), Reason.KEY_NOT_VALID)
        if checkpoint.suspended:
            return Standing(Role(0), Reason.ATTESTER_SUSPENDED)
        return Standing(Role(checkpoint.roles), None)
