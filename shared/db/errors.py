"""Database outcomes a service reacts to, as subclasses of the one hierarchy.

    shared.errors.Conflict (409)
    ├── IdempotencyConflict   (owner, scope, key) already stored: replay that row
    └── DraftBusy             the draft already has a queued/running generation
    shared.errors.SubscriptionRequired (402)
    └── OwnerGone             the account was deleted while a create was admitted
    shared.errors.InternalError (500)
    ├── UniqueViolation       any other unique constraint (constraint name attached)
    └── ForeignKeyViolation   a referenced row is missing (constraint name attached)

Connection failures, timeouts, serialization failures and deadlocks become
``shared.errors.ServiceUnavailable`` (503, retryable) in ``shared.db.session``. Left
uncaught, each class still renders as the right SPEC error.
"""

from __future__ import annotations

from shared.errors import Conflict, InternalError, SubscriptionRequired

__all__ = [
    "DraftBusy",
    "ForeignKeyViolation",
    "IdempotencyConflict",
    "OwnerGone",
    "UniqueViolation",
]


class IdempotencyConflict(Conflict):
    """A row with this (owner, scope, key) exists: the caller replays it (DESIGN §4)."""

    default_code = "IDEMPOTENCY_IN_PROGRESS"

    def __init__(self, owner_id: str, scope: str | None, key: str) -> None:
        super().__init__("A request with this Idempotency-Key was already accepted.")
        self.owner_id = owner_id
        self.scope = scope
        self.key = key


class DraftBusy(Conflict):
    """At most one queued/running generation per draft (409 GENERATION_IN_PROGRESS)."""

    default_code = "GENERATION_IN_PROGRESS"

    def __init__(self, draft_id: object) -> None:
        super().__init__("This draft already has a generation in progress.")
        self.draft_id = draft_id


class OwnerGone(SubscriptionRequired):
    """A create's owner has no user row: the account was deleted after the admission (a
    user with a plan always has one). Nothing was written; to the API the caller is now a
    new user with no plan (402), as any later request of the same ``sub`` is."""

    def __init__(self, owner_id: str) -> None:
        super().__init__("The account no longer exists.")
        self.owner_id = owner_id


class UniqueViolation(InternalError):
    """A unique constraint not handled by a repository (a bug, hence 500)."""

    def __init__(self, constraint: str) -> None:
        super().__init__("A database uniqueness rule was violated.")
        self.constraint = constraint


class ForeignKeyViolation(InternalError):
    """A referenced row does not exist (callers check ownership first, hence 500)."""

    def __init__(self, constraint: str) -> None:
        super().__init__("A referenced database row is missing.")
        self.constraint = constraint
