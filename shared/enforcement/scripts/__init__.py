"""One module per Lua script of ``lua/``: its KEYS and ARGV dataclasses (slot order =
field order), the pure builders that fill them, its reply type and the parser — so a
change to one script is a change to one module. ``common`` holds what several share.

``SCRIPT_SLOTS`` lists every script with its (KEYS, ARGV) dataclasses;
``tests/unit/test_lua_contract.py`` checks each script's header against them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.enforcement.scripts import (
    admission,
    circuit,
    cooldown,
    counter_with_limit,
    credit_set,
    finish,
    idempotency,
    refresh_lease,
    refund,
    semaphore_acquire,
    semaphore_release,
    usage,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["SCRIPT_SLOTS"]

SCRIPT_SLOTS: dict[str, tuple[type[DataclassInstance], type[DataclassInstance]]] = {
    s.name: (s.keys, s.args)
    for s in (
        admission.SCRIPT,
        usage.SCRIPT,
        finish.SCRIPT,
        refund.SCRIPT,
        credit_set.SCRIPT,
        refresh_lease.SCRIPT,
        counter_with_limit.SCRIPT,
        cooldown.SCRIPT,
        semaphore_acquire.SCRIPT,
        semaphore_release.SCRIPT,
        circuit.SCRIPT,
        *idempotency.SCRIPTS,
    )
}
"""Every script in ``lua/`` and its (KEYS, ARGV) dataclasses."""
