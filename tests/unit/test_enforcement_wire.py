"""Pure argument builders, reply parsers and the error boundary, without Redis."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.enforcement import (
    AdmissionRequest,
    ChargeRef,
    LeaseRef,
    Scope,
    StatusNote,
    StoredResponse,
    enforce_idempotency,
    enforce_lease,
    enforce_or_throw,
)
from shared.enforcement.ports import LedgerTruth, PlanInfo, Truth
from shared.enforcement.scripts.admission import (
    AdmissionKind,
    AdmissionTicket,
    Admitted,
    InProgress,
    KeyReused,
    Refusal,
    RefusalCode,
    Refused,
    Replay,
    admission_args,
    admission_keys,
    parse_admission,
    plan_limits,
    plan_table,
    read_plan_table,
    refusal_error,
    refusal_for,
)
from shared.enforcement.scripts.common import (
    AdmitConfig,
    Need,
    PlanFill,
    hour_expireat_s,
    month_expireat_s,
    parse_need,
    parse_stored,
    refund_marker_expireat_s,
)
from shared.enforcement.scripts.cooldown import CooldownResult, parse_cooldown
from shared.enforcement.scripts.counter_with_limit import CounterResult, parse_counter
from shared.enforcement.scripts.credit_set import parse_credit_set
from shared.enforcement.scripts.finish import finish_args, finish_keys
from shared.enforcement.scripts.idempotency import (
    IdempotencyKind,
    IdempotencyState,
    idem_complete_args,
    parse_idempotency,
)
from shared.enforcement.scripts.refresh_lease import (
    LeaseStatus,
    parse_refresh,
    refresh_lease_args,
    refresh_lease_keys,
)
from shared.enforcement.scripts.refund import refund_args, refund_keys
from shared.enforcement.scripts.semaphore_acquire import SemaphoreResult, parse_semaphore_acquire
from shared.enforcement.scripts.usage import (
    CreditBalance,
    UsageSnapshot,
    parse_credits,
    parse_usage,
    usage_args,
    usage_keys,
)
from shared.enforcement.values import IdempotencyRef, Meter
from shared.errors import (
    Conflict,
    IdempotencyKeyReused,
    InternalError,
    LimitExceeded,
    PlanFeatureUnavailable,
    ServiceUnavailable,
    SubscriptionRequired,
)
from shared.plans import PLANS, Lane, PlanName
from shared.queue.signing import TokenUse
from shared.redis import Keys
from shared.redis.scripts import LUA_DIR
from tests.support.enforcement_sources import FakePlans, FakeUsage

NOW = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
DEC1 = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
HOUR_END = int(datetime(2026, 11, 27, 18, tzinfo=UTC).timestamp())
REQ = AdmissionRequest(
    user_id="u",
    scope=Scope.REGEN_FULL,
    lease_id="g1",
    now=NOW,
    provider="minimax",
    model="M",
    lane=Lane.INTERACTIVE,
    variants=3,
    draft_id="d",
    idem_key="k",
    fingerprint="fp",
)
CFG = AdmitConfig(plan_table(), 600, 60_000, 50, 86_400, 0)


def test_plan_table_comes_from_plans_py() -> None:
    # By name, not by position: each plan under its name, each limit under its own.
    table = read_plan_table(plan_table())
    assert next(iter(table)) == "basic"
    assert table["basic"] == {
        "monthly": 60, "hourly": 10, "max_variants": 1, "full_allowed": False, "full_cap": 0,
        "concurrency": 1, "cooldown_ms": 20000,
    }  # fmt: skip
    assert table["pro"] == {
        "monthly": 900, "hourly": 120, "max_variants": 5, "full_allowed": True, "full_cap": -1,
        "concurrency": 5, "cooldown_ms": 5000,
    }  # fmt: skip
    assert len(table) == len(PLANS)


def test_the_plan_table_text_reads_back_to_every_limit_and_nothing_else() -> None:
    text = plan_table()
    assert read_plan_table(text) == plan_limits()
    assert text.startswith("basic{monthly=")  # by name, not by position
    assert read_plan_table("a{x=1,y=true};b{x=-1,y=false}") == {
        "a": {"x": 1, "y": True},
        "b": {"x": -1, "y": False},
    }


def _header_slots(script: str) -> dict[str, dict[int, str]]:
    """``{"KEYS": {1: "…", …}, "ARGV": {…}}``: each slot's text in the script's header."""
    slots: dict[str, dict[int, str]] = {"KEYS": {}, "ARGV": {}}
    for line in (LUA_DIR / f"{script}.lua").read_text().splitlines():
        if not line.startswith("--"):
            break
        # Several slots may share a line: each description runs up to the next slot.
        parts = re.split(r"\b(KEYS|ARGV)\[(\d+)\]", line)
        for kind, index, text in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
            slots[kind][int(index)] = text.strip()
    return slots


# What the header's placeholders stand for in REQ, and what each ARGV slot (named by its
# header description) must carry for REQ / CFG / the fills and seeds passed below.
_PLACEHOLDERS = {
    "p": "p", "u": "u", "scope": "regenerate", "idem_key": "k", "yyyymm": "202611",
    "yyyymmddhh": "2026112717", "draft_id": "d", "provider": "minimax", "model": "M",
    "lane": "interactive", "lease_id": "g1",
}  # fmt: skip
_ARGV = {
    "time offset": "0", "scope": "regen_full", "lease id": "g1", "variants requested": "3",
    "request fingerprint": "fp", "plan table": CFG.plan_table, "plan fill": "none",
    "boost fill": "0", "plan cache TTL": "600", "monthly seed": "3", "hourly seed": "",
    "full seed": "1", "monthly counters EXPIREAT": str(DEC1 + 86_400),
    "hourly counter EXPIREAT": str(HOUR_END + 86_400),
    "lease TTL": "60000", "provider cap": "50", "idempotency record TTL": "86400",
    "credits seed": "", "notice marks": "80,100", "low credit mark": "10",
}  # fmt: skip


def test_admission_keys_and_args_follow_the_script_header() -> None:
    header = _header_slots("admission")
    # KEYS: the template at the end of each header line, placeholders filled in from REQ.
    templates = [header["KEYS"][i].split()[-1] for i in range(1, len(header["KEYS"]) + 1)]
    expected_keys = [
        re.sub(r"\{(\w+)\}", lambda m: _PLACEHOLDERS[m.group(1)], t) for t in templates
    ]
    assert admission_keys(Keys("p"), REQ) == expected_keys
    # ARGV: each slot's description names what it carries; the builder must agree.
    args = admission_args(REQ, CFG, PlanFill.of(PlanInfo(None)), Truth(month=3, full=1))
    assert len(args) == len(header["ARGV"])
    for index, text in header["ARGV"].items():
        name = re.split(r"[,:(|]", text)[0].strip()
        assert args[index - 1] == _ARGV[name], (index, text)
    plain_request = AdmissionRequest(
        user_id="u", scope=Scope.CREATE, lease_id="g", now=NOW, provider="m", model="M"
    )
    plain = admission_args(plain_request, CFG, None, None)
    assert plain[4] == ""
    # No key: no fingerprint is sent, even when the request has one.
    assert admission_args(replace(plain_request, fingerprint="fp"), CFG, None, None)[4] == ""
    # Unused slots name fixed keys of the user: no key, no draft.
    sent_keys = admission_keys(Keys("p"), plain_request)
    assert Keys("p").idem("u", "create", "") in sent_keys
    assert Keys("p").regen_cooldown("u", "-") in sent_keys
    assert plain[6:8] == ["", ""]
    assert plain[9:12] == ["", "", ""]


def test_plan_fill_of_a_boost() -> None:
    boost = datetime(2026, 12, 1, tzinfo=UTC)
    assert PlanFill.of(PlanInfo(PlanName.BASIC, boost)) == PlanFill("basic", DEC1 * 1000)


def test_every_ticket_meter_comes_from_its_own_reply_slot() -> None:
    # Every number in the reply differs, so a meter read from a neighbour's slot shows.
    reply = ["admitted", "standard", 5, 300, 2, 40, 1, 30, 1_764_264_660_000, 1_764_264_600_000,
             "pool", -1, ""]  # fmt: skip
    admitted = parse_admission(reply, REQ)
    assert isinstance(admitted, Admitted)
    assert admitted.ticket is not None
    ticket = admitted.ticket
    assert ticket.monthly == Meter(5, 300, datetime(2026, 12, 1, tzinfo=UTC))
    assert ticket.hourly == Meter(2, 40, datetime(2026, 11, 27, 18, tzinfo=UTC))
    assert ticket.lease_expires_at == datetime.fromtimestamp(1_764_264_660, UTC)


def test_parse_admission_outcomes() -> None:
    admitted = parse_admission(
        ["admitted", "standard", 5, 300, 2, 40, 1, 30, 1_764_264_660_000, 1_764_264_600_000,
         "pool", -1, ""], REQ,
    )  # fmt: skip
    assert isinstance(admitted, Admitted)
    assert admitted.ticket is not None
    ticket = admitted.ticket
    assert ticket.plan is PlanName.STANDARD
    assert ticket.monthly == Meter(5, 300, datetime(2026, 12, 1, tzinfo=UTC))
    assert ticket.charge == ChargeRef("g1", "u", "2026-11", Scope.REGEN_FULL)
    assert ticket.hour == "2026112717"
    assert ticket.lease == LeaseRef("g1", "u", "minimax", "M", Lane.INTERACTIVE)
    assert ticket.idempotency is not None
    assert ticket.idempotency.scope == "regenerate"
    assert enforce_or_throw(admitted) is ticket
    assert parse_admission(["need_plan", "month,hour"], REQ) == Need(
        True, frozenset({"month", "hour"})
    )
    assert parse_admission(["need_seed", ""], REQ) == Need(False, frozenset())
    replay = parse_admission(["replay", 202, "{}", '{"Location": "/x"}'], REQ)
    assert isinstance(replay, Replay)
    assert replay.replay == StoredResponse(202, "{}", {"Location": "/x"})
    assert parse_admission(["in_progress"], REQ) == InProgress()
    assert parse_admission(["key_reused"], REQ) == KeyReused()
    assert parse_admission(["in_progress"], REQ).kind is AdmissionKind.IN_PROGRESS


@pytest.mark.parametrize(
    "reply",
    [
        ["admitted"],
        ["admitted", "standard", 5, 300, 2, 40, 1, 30],
        ["admitted", "standard", 5, 300, 2, 40, 1, 30, 1_764_264_660_000, 1_764_264_600_000],
        ["refused", "MONTHLY_QUOTA_EXCEEDED", 60],
        ["replay", 202, "{}"],
    ],
)
def test_parse_admission_refuses_a_malformed_reply(reply: list[object]) -> None:
    # An Admitted without its ticket cannot be built; the parser is where a short reply stops.
    with pytest.raises(ValueError, match="malformed admission reply"):
        parse_admission(reply, REQ)


def refused(code: str, limit: int = 0, used: int = 0, retry_ms: int = 0) -> Refusal:
    admission = parse_admission(["refused", code, limit, used, retry_ms], REQ)
    assert isinstance(admission, Refused)
    assert admission.refusal is not None
    with pytest.raises(Exception) as info:
        enforce_or_throw(admission)
    assert info.value is not None
    return admission.refusal


def test_refusals_carry_spec_details_and_retry_after() -> None:
    monthly = refused("MONTHLY_QUOTA_EXCEEDED", 60, 60)
    assert monthly.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert monthly.retry_after_s == 3 * 86400 + 6 * 3600 + 30 * 60
    hourly = refused("HOURLY_LIMIT_EXCEEDED", 10, 10)
    assert hourly.retry_after_s == 30 * 60
    cooldown = refused("COOLDOWN_ACTIVE", 20_000, 0, 1_001)
    assert (cooldown.limit, cooldown.used, cooldown.retry_after_s) == (20, None, 2)
    assert refused("CONCURRENCY_LIMIT", 1, 1).retry_after_s == 5
    assert refused("FULL_REGEN_CAP_EXCEEDED", 30, 30).limit == 30
    assert refused("PLAN_FEATURE_UNAVAILABLE", 1, 3) == Refusal("PLAN_FEATURE_UNAVAILABLE", 1, 3)
    assert refused("PLAN_FEATURE_UNAVAILABLE") == Refusal("PLAN_FEATURE_UNAVAILABLE")


def test_refusal_errors() -> None:
    error = refusal_error(Refusal("MONTHLY_QUOTA_EXCEEDED", 60, 60, NOW, 10))
    assert isinstance(error, LimitExceeded)
    assert error.code == "MONTHLY_QUOTA_EXCEEDED"
    assert error.details == {"limit": 60, "used": 60, "resets_at": "2026-11-27T17:30:00Z"}
    assert error.retry_after == 10
    assert error.status == 429
    busy = refusal_error(Refusal("PROVIDER_BUSY", 50, 50, None, 5))
    assert isinstance(busy, ServiceUnavailable)
    assert busy.code == "PROVIDER_BUSY"
    assert busy.retry_after == 5
    assert busy.status == 503
    assert isinstance(refusal_error(Refusal("SUBSCRIPTION_REQUIRED")), SubscriptionRequired)
    assert isinstance(refusal_error(Refusal("PLAN_FEATURE_UNAVAILABLE")), PlanFeatureUnavailable)
    assert isinstance(refusal_error(Refusal("NOPE")), InternalError)
    with pytest.raises(Conflict):
        enforce_or_throw(InProgress())
    with pytest.raises(IdempotencyKeyReused):
        enforce_or_throw(KeyReused())


def test_idempotency_and_lease_parsing() -> None:
    assert parse_idempotency(["new"]) == IdempotencyState(IdempotencyKind.NEW)
    replay = parse_idempotency(["replay", 201, "b", "{}"])
    assert enforce_idempotency(replay) == StoredResponse(201, "b", {})
    assert enforce_idempotency(IdempotencyState(IdempotencyKind.NEW)) is None
    with pytest.raises(Conflict):
        enforce_idempotency(IdempotencyState(IdempotencyKind.IN_PROGRESS))
    with pytest.raises(IdempotencyKeyReused):
        enforce_idempotency(IdempotencyState(IdempotencyKind.KEY_REUSED))
    held = parse_refresh(["held", 1_764_264_600_000])
    assert held.ok
    assert enforce_lease(held) is held
    busy = parse_refresh(["busy", "PROVIDER_BUSY", 50, 50])
    assert busy == LeaseStatus("busy", code="PROVIDER_BUSY", retry_after_s=5)
    with pytest.raises(ServiceUnavailable) as info:
        enforce_lease(busy)
    assert info.value.code == "PROVIDER_BUSY"
    with pytest.raises(ServiceUnavailable) as info:
        enforce_lease(LeaseStatus("busy", code="CONCURRENCY_LIMIT", retry_after_s=5))
    assert info.value.code == "SERVICE_UNAVAILABLE"
    superseded = parse_refresh(["superseded"])
    assert superseded.superseded
    assert not superseded.ok


def test_usage_parsing() -> None:
    now_ms = 1_764_264_600_000
    snap = parse_usage(["usage", "basic", now_ms + 1, 3, 1, 0, 1, now_ms, ""], NOW)
    assert not isinstance(snap, Need)
    assert snap.plan is PlanName.BASIC
    assert snap.effective_plan is PlanName.PRO
    assert snap.boost_expires_at == datetime.fromtimestamp((now_ms + 1) / 1000, UTC)
    assert snap.generations == Meter(3, 900, datetime(2026, 12, 1, tzinfo=UTC))
    assert snap.generations.remaining == 897
    assert snap.full_regens.remaining == -1
    nobody = parse_usage(["usage", "none", 0, 0, 0, 0, 0, now_ms, ""], NOW)
    assert not isinstance(nobody, Need)
    assert nobody.effective_plan is None
    assert nobody.generations.limit == 0
    limits = (nobody.hourly.limit, nobody.full_regens.limit, nobody.concurrency.limit)
    assert limits == (0, 0, 0)
    assert nobody.boost_expires_at is None


def test_finish_and_refund_arguments() -> None:
    keys, lease = Keys("p"), LeaseRef("g", "u", "mm", "M", Lane.BATCH)
    charge = ChargeRef("g", "u", "2026-11", Scope.REGEN_FULL)
    assert finish_keys(keys, lease, charge, None)[2:6] == [
        "p:conc:lease:g",
        "p:refund:g",
        "p:usage:u:gen_used:202611",
        "p:usage:u:full_regen_used:202611",
    ]
    marker = refund_marker_expireat_s("2026-11")
    assert marker == DEC1 + 2 * 86_400
    assert finish_args(lease, charge, None) == [
        "g", "1", "1", str(marker), "", "0", "", "0", "", "", "",
    ]  # fmt: skip
    assert finish_args(lease, charge, None, "d1")[5] == "1"
    fenced = LeaseRef("g", "u", "mm", "M", Lane.BATCH, attempt=3)
    assert finish_args(fenced, charge, None)[6] == "3"
    assert finish_keys(keys, lease, charge, None, "d1")[7] == keys.regen_cooldown(
        lease.user_id, "d1"
    )
    # An abort names the hour it charged and gives that unit back; the worker never does.
    assert finish_keys(keys, lease, charge, None, None, "2026112717")[8] == (
        "p:burst:u:gen_hour:2026112717"
    )
    assert finish_args(lease, charge, None, None, "2026112717")[7] == "1"
    assert finish_args(lease, None, None) == ["g", "0", "0", "0", "", "0", "", "0", "", "", ""]
    # The terminal status for the event streams: its key in the last slot, value and TTL.
    note = StatusNote("g", "failed", 3_600_000)
    assert finish_keys(keys, lease, charge, None, note=note)[10] == "p:gen:status:g"
    assert finish_args(lease, charge, None, note=note)[9:] == ["failed", "3600000"]
    assert finish_keys(keys, lease, charge, None)[10] == "p:gen:status:g"  # left alone
    assert refund_keys(keys, charge)[0] == "p:refund:g"
    assert refund_args(ChargeRef("g", "u", "2026-11", Scope.CREATE)) == [str(marker), "0", ""]
    # A unit a credit paid goes back to that credit, in the user's credits hash.
    paid = ChargeRef("g", "u", "2026-11", Scope.CREATE, "c1")
    assert refund_args(paid)[2] == "c1"
    assert refund_keys(keys, paid)[3] == "p:credits:u"
    assert finish_args(lease, paid, None)[8] == "c1"
    assert finish_keys(keys, lease, paid, None)[9] == "p:credits:u"


_WALL_CLOCK = re.compile(r"\butcnow\(|\bdatetime\.now\(|\btime\.time\(")


def wall_clock_reads(source: str) -> list[str]:
    """Lines of ``source`` that read the wall clock instead of an injected clock."""
    return [line.strip() for line in source.splitlines() if _WALL_CLOCK.search(line)]


def test_enforcement_reads_time_only_from_its_injected_clock() -> None:
    # Script time is Redis TIME + offset; "now" comes from the request or Enforcer(clock=).
    package = LUA_DIR.parent / "shared" / "enforcement"
    found = {
        str(p.relative_to(package)): lines
        for p in sorted(package.rglob("*.py"))
        if (lines := wall_clock_reads(p.read_text()))
    }
    assert found == {}


def test_the_wall_clock_scanner_finds_a_read() -> None:
    source = "now = now or utcnow()\nstart = datetime.now(UTC)\nclock.now()\n"
    assert wall_clock_reads(source) == ["now = now or utcnow()", "start = datetime.now(UTC)"]


# ---- the single-limit scripts' replies, to the value (make mutate) ----------------------


def test_a_semaphore_reply_reads_each_slot_and_rounds_the_wait_up() -> None:
    assert parse_semaphore_acquire([1, 2, 987_654], 3) == SemaphoreResult(True, 2, 3)
    assert parse_semaphore_acquire([0, 3, 2001], 3) == SemaphoreResult(False, 3, 3, 3)
    assert parse_semaphore_acquire([0, 1, 1000], 1).retry_after_s == 1
    assert parse_semaphore_acquire([0, 1, 1], 1).retry_after_s == 1  # never "retry in 0 s"
    assert parse_semaphore_acquire([0, 1, 0], 1).retry_after_s == 1


def test_a_cooldown_reply_rounds_the_wait_up_to_whole_seconds() -> None:
    assert parse_cooldown([1, 0]) == CooldownResult(True)
    assert parse_cooldown([0, 2001]) == CooldownResult(False, 3)
    assert parse_cooldown([0, 1000]) == CooldownResult(False, 1)


def test_a_counter_reply_and_its_seed_request() -> None:
    resets = datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_counter(["need_seed"], "hour", resets) == Need(
        plan=False, counters=frozenset({"hour"})
    )
    assert parse_counter(["ok", 4, 10], "hour", resets) == CounterResult(True, 4, 10, resets)
    assert parse_counter(["limit", 10, 10], "month", resets) == CounterResult(False, 10, 10, resets)


def test_a_cooldown_refusal_under_a_second_says_one_second() -> None:
    now = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
    refusal = refusal_for(RefusalCode.COOLDOWN_ACTIVE, 500, 0, 300, now)
    assert (refusal.limit, refusal.retry_after_s) == (1, 1)
    longer = refusal_for(RefusalCode.COOLDOWN_ACTIVE, 20_000, 0, 2001, now)
    assert (longer.limit, longer.retry_after_s) == (20, 3)


def test_unused_finish_slots_name_fixed_keys_of_the_user() -> None:
    """A finish with nothing to refund, no key, draft, hour or note still sends eleven real
    keys of this user (one hash slot, nothing the script touches): fixed placeholders."""
    keys, lease = Keys("p"), LeaseRef("g", "u", "mm", "M", Lane.BATCH)
    assert finish_keys(keys, lease, None, None) == [
        keys.user_leases("u"), keys.provider("mm", "M", "batch"), "p:conc:lease:g",
        "p:refund:g", "p:usage:u:gen_used:000000", "p:usage:u:full_regen_used:000000",
        keys.idem("u", "-", "-"), keys.regen_cooldown("u", "-"),
        "p:burst:u:gen_hour:0000000000", "p:credits:u", "p:gen:status:g",
    ]  # fmt: skip
    # The charge names its own generation's marker; the note its own generation's status.
    charge = ChargeRef("gen-2", "u", "2026-11", Scope.CREATE)
    note = StatusNote("gen-3", "cancelled", 1000)
    sent = finish_keys(keys, lease, charge, None, note=note)
    assert (sent[3], sent[10]) == ("p:refund:gen-2", "p:gen:status:gen-3")


def test_refresh_lease_slots_and_arguments() -> None:
    keys, lease = Keys("p"), LeaseRef("g", "u", "mm", "M", Lane.BATCH)
    plain = refresh_lease_keys(keys, lease, None, None)
    assert plain[3:] == [keys.qstash_token("-"), "p:gen:status:g"]
    token = TokenUse("tok-1", 600, ledger=None)  # type: ignore[arg-type]
    note = StatusNote("gen-3", "running", 5000)
    assert refresh_lease_keys(keys, lease, token, note)[3:] == [
        keys.qstash_token("tok-1"), "p:gen:status:gen-3",
    ]  # fmt: skip
    common = {"time_offset_ms": 7, "lease_ttl_ms": 60_000, "user_limit": 2, "provider_cap": 9}
    assert refresh_lease_args(lease, token=None, note=None, **common) == [
        "7", "g", "60000", "2", "9", "", "", "", "",
    ]  # fmt: skip
    assert refresh_lease_args(lease, token=token, note=note, **common)[6:] == [
        "600000", "running", "5000",
    ]  # fmt: skip


def test_a_busy_lease_says_when_to_retry() -> None:
    with pytest.raises(ServiceUnavailable) as info:
        enforce_lease(LeaseStatus("busy", code="CONCURRENCY_LIMIT", retry_after_s=7))
    assert info.value.retry_after == 7


def test_idempotency_answers_never_proceed_on_a_replay_without_its_response() -> None:
    with pytest.raises(Conflict) as info:
        enforce_idempotency(IdempotencyState(IdempotencyKind.IN_PROGRESS))
    assert info.value.code == "IDEMPOTENCY_IN_PROGRESS"
    with pytest.raises(IdempotencyKeyReused):  # not None, which would run it again
        enforce_idempotency(IdempotencyState(IdempotencyKind.REPLAY))


def test_a_stored_response_is_sent_as_compact_sorted_json() -> None:
    stored = StoredResponse(201, '{"id": 1}', {"b": "2", "a": "1"})
    assert idem_complete_args("fp", stored, 86_400) == [
        "fp", "201", '{"id": 1}', '{"a":"1","b":"2"}', "86400",
    ]  # fmt: skip
    assert parse_stored(["replay", 201, "body", ""]) == StoredResponse(201, "body", {})


def test_the_refund_marker_outlives_the_month_in_any_local_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = refund_marker_expireat_s("2026-11")
    monkeypatch.setenv("TZ", "Pacific/Auckland")
    time.tzset()
    try:
        assert refund_marker_expireat_s("2026-11") == expected == DEC1 + 2 * 86_400
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_full_regen_refund_names_the_full_regen_counter() -> None:
    keys = Keys("p")
    full = ChargeRef("g", "u", "2026-11", Scope.REGEN_FULL)
    assert refund_keys(keys, full)[2] == "p:usage:u:full_regen_used:202611"
    assert refund_args(full)[1] == "1"
    assert refund_args(ChargeRef("g", "u", "2026-11", Scope.REGEN_TARGETED))[1] == "0"


def test_the_ledger_truth_reads_only_what_was_asked() -> None:
    plans = FakePlans({"u": PlanInfo(PlanName.STANDARD)})
    usage = FakeUsage(month={("u", "2026-11"): 7}, hour={("u", "2026112717"): 2},
                      full={("u", "2026-11"): 1}, credits={"u": "c1:3"})  # fmt: skip
    truth = LedgerTruth(plans, usage)
    at = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
    assert truth.load_truth("u", at, plan=False, counters=frozenset()) == Truth()
    assert plans.loads == 0
    assert truth.load_truth("u", at, plan=True, counters=frozenset({"credits"})) == Truth(
        plan=PlanInfo(PlanName.STANDARD), credits="c1:3"
    )
    every = frozenset({"month", "hour", "full"})
    assert truth.load_truth("u", at, plan=False, counters=every) == Truth(month=7, hour=2, full=1)


def test_a_credit_set_reply() -> None:
    assert parse_credit_set([1, 10, 4]) == (True, 4)
    assert parse_credit_set([0, 10, 0]) == (False, 0)


def test_each_limit_error_says_its_own_message() -> None:
    now = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
    hourly = refusal_error(refusal_for(RefusalCode.HOURLY_LIMIT_EXCEEDED, 10, 10, 0, now))
    assert hourly.message == "Hourly generation limit reached; try again later."
    busy = refusal_error(refusal_for(RefusalCode.PROVIDER_BUSY, 5, 5, 0, now))
    assert busy.message == "The AI provider is at capacity; retry shortly."
    unknown = refusal_error(Refusal("NOT_A_CODE"))  # type: ignore[arg-type]
    assert isinstance(unknown, InternalError)
    assert unknown.message == "unknown refusal code NOT_A_CODE"


@pytest.mark.parametrize(
    ("tail", "credit_id", "credits_left", "notices"),
    [
        (["pool", -1, ""], "", None, ()),
        (["pool", 7, "pool_80"], "", None, ("pool_80",)),  # the pool paid: no credit count
        (["c1", 0, "pool_100,credits_low"], "c1", 0, ("pool_100", "credits_low")),
        (["c1", 3, ""], "c1", 3, ()),
        (["c1", -1, ""], "c1", None, ()),  # a keyed early answer: the count was not read
    ],
)  # fmt: skip
def test_who_paid_what_is_left_and_the_notices_come_from_the_last_three_slots(
    tail: list[object], credit_id: str, credits_left: int | None, notices: tuple[str, ...]
) -> None:
    reply = ["admitted", "standard", 5, 300, 2, 40, 1, 30, 1_764_264_660_000, 1_764_264_600_000]
    admitted = parse_admission([*reply, *tail], REQ)
    assert isinstance(admitted, Admitted)
    ticket = admitted.ticket
    assert (ticket.charge.credit_id, ticket.credits_left, ticket.notices) == (
        credit_id, credits_left, notices,
    )  # fmt: skip


def test_an_admitted_reply_becomes_the_whole_ticket() -> None:
    reply = ["admitted", "standard", 5, 300, 2, 40, 1, 30, 1_764_264_660_000, 1_764_264_600_000,
             "c9", 4, "credits_low"]  # fmt: skip
    admitted = parse_admission(reply, REQ)
    assert isinstance(admitted, Admitted)
    assert admitted.ticket == AdmissionTicket(
        lease=LeaseRef("g1", "u", "minimax", "M", Lane.INTERACTIVE),
        charge=ChargeRef("g1", "u", "2026-11", Scope.REGEN_FULL, "c9"),
        plan=PlanName.STANDARD,
        monthly=Meter(5, 300, datetime(2026, 12, 1, tzinfo=UTC)),
        hourly=Meter(2, 40, datetime(2026, 11, 27, 18, tzinfo=UTC)),
        lease_expires_at=datetime.fromtimestamp(1_764_264_660, UTC),
        idempotency=IdempotencyRef("u", "regenerate", "k", "fp"),
        draft_id="d",
        hour="2026112717",
        credits_left=4,
        notices=("credits_low",),
    )
    create = replace(REQ, scope=Scope.CREATE, lease_id="g2", lane=Lane.BATCH, idem_key=None)
    plain = parse_admission([*reply[:10], "pool", -1, ""], create)
    assert isinstance(plain, Admitted)
    ticket = plain.ticket
    assert (ticket.idempotency, ticket.draft_id, ticket.credit_id) == (None, None, None)
    assert ticket.charge == ChargeRef("g2", "u", "2026-11", Scope.CREATE, "")
    assert ticket.lease.lane is Lane.BATCH


def test_a_usage_reply_becomes_the_whole_snapshot() -> None:
    now_ms = int(NOW.timestamp() * 1000)
    later = now_ms + 86_400_000
    credits = (f"p2:{later + 5}:10:3:pack;;g1:{later}:5:5:grant;"
               f"old:{now_ms}:9:0:pack;gone:{later}:0:0:pack")  # fmt: skip
    snap = parse_usage(["usage", "standard", 0, 12, 4, 2, 1, now_ms, credits], NOW)
    standard = PLANS[PlanName.STANDARD]
    month_end, hour_end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 11, 27, 18, tzinfo=UTC)
    assert snap == UsageSnapshot(
        plan=PlanName.STANDARD,
        effective_plan=PlanName.STANDARD,
        boost_expires_at=None,
        period="2026-11",
        generations=Meter(12, standard.generations_per_month, month_end),
        hourly=Meter(4, standard.generations_per_hour, hour_end),
        full_regens=Meter(2, standard.full_regens_per_month, month_end),
        concurrency=Meter(1, standard.concurrent_jobs),
        credits=(  # earliest expiry first; the expired and the wholly taken back left out
            CreditBalance("g1", "grant", datetime.fromtimestamp(later / 1000, UTC), 5, 5),
            CreditBalance("p2", "pack", datetime.fromtimestamp((later + 5) / 1000, UTC), 10, 3),
        ),
    )
    assert snap.credits[0].remaining == 0
    assert snap.credits[1].remaining == 7
    expired_boost = parse_usage(["usage", "basic", now_ms, 0, 0, 0, 0, now_ms, ""], NOW)
    assert not isinstance(expired_boost, Need)
    assert (expired_boost.effective_plan, expired_boost.boost_expires_at) == (PlanName.BASIC, None)
    same_expiry = f"b:{later}:1:0:pack;a:{later}:1:0:grant"
    assert [c.credit_id for c in parse_credits(same_expiry, now_ms)] == ["a", "b"]


def test_usage_keys_and_arguments() -> None:
    keys = Keys("p")
    assert usage_keys(keys, "u", NOW) == [
        keys.plan_effective("u"), keys.boost_until("u"), "p:usage:u:gen_used:202611",
        "p:burst:u:gen_hour:2026112717", "p:usage:u:full_regen_used:202611",
        keys.user_leases("u"), "p:credits:u",
    ]  # fmt: skip
    cfg = AdmitConfig(plan_table(), 600, 60_000, 50, 86_400, 7)
    assert usage_args(NOW, cfg, None, None) == [
        "7", "", "", "600", "", "", "", str(month_expireat_s(NOW)), str(hour_expireat_s(NOW)), "",
    ]  # fmt: skip
    fill = PlanFill("pro", 123)
    seeds = Truth(month=3, hour=1, full=0, credits="c1:9:1:0:pack")
    assert usage_args(NOW, cfg, fill, seeds)[1:7] == ["pro", "123", "600", "3", "1", "0"]
    assert usage_args(NOW, cfg, fill, seeds)[9] == "c1:9:1:0:pack"


def test_a_need_reply_names_what_is_missing() -> None:
    assert parse_need(["need_plan", ""]) == Need(True, frozenset())
    assert parse_need(["need_seed", "month,,credits"]) == Need(
        False, frozenset({"month", "credits"})
    )
    assert parse_need(["admitted"]) is None
    assert PlanFill.args(None) == ("", "")
    assert PlanFill.of(PlanInfo(None)) == PlanFill("none", 0)
