"""Aggregate statistics of call records, fast with 100,000+ calls.

Everything the dashboard and ``GET /api/calls/stats`` show: calls per day with
their outcomes, resolution and escalation rates, escalation reasons, the intent
distribution, a confidence histogram, turn latency p50/p95 by stage per day, and
the slowest turns.

The work is split by UTC day. Each day's aggregates (a :data:`DayPartial`:
counts, and a latency histogram per stage in :data:`BUCKET_MS` buckets) are
computed in SQL and are mergeable, so a window's figures are the merge of its
days. A whole day in the past no longer changes, so its partial is cached
(:class:`StatsCache`, invalidated by the writer when a late record touches that
day, and expiring after an hour in any case); only the partial first day and
today are read from the tables on every request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from integrations.storage.dialects import DialectSupport, dialect_support
from integrations.storage.models import STAGE_COLUMNS, Call, Turn
from integrations.storage.queries import CallFilter, iso
from integrations.storage.records import utcnow
from integrations.storage.stats_cache import DayPartial, StatsCache

QUANTILES = (0.5, 0.95)
BUCKET_MS = 5.0
"""Latency histogram resolution (percentiles are interpolated inside a bucket)."""
CONFIDENCE_BINS = 20
TOP_INTENTS = 25
TOP_REASONS = 15
SLOWEST_TURNS = 15
OUTCOME_NAMES = ("resolved", "escalated", "abandoned", "failed")
BANDS = ("act", "clarify", "repair")
LATENCY_COLUMNS = {"total": Turn.latency_ms, **STAGE_COLUMNS}


def day_of(moment: datetime) -> str:
    """The UTC day of a stored datetime, as the statistics name it."""
    return moment.strftime("%Y-%m-%d")


def call_stats(
    conn: Connection, where: CallFilter, cache: StatsCache | None = None
) -> dict[str, Any]:
    """Every aggregate the dashboard shows, for the calls ``where`` selects."""
    dialect = dialect_support(conn)
    now = utcnow()
    until = min(where.until or now, now)
    first = _first_started(conn, where)
    # days before the first matching call add nothing: a window reaching back centuries
    # (since=0001-01-02) must not walk every one of its days
    since = None if first is None else max(where.since or first, first)
    partials: list[DayPartial] = []
    if since is not None and since < until:
        partials = _window_partials(conn, dialect, where, since, until, now, cache)
    return {
        "window": {
            "since": iso(where.since),
            "until": iso(where.until),
            "outcome": where.outcome,
            "intent": where.intent,
            "transport": where.transport,
        },
        **_merge(partials),
        "slowest_turns": _slowest_turns(conn, where),
    }


# Days and segments


def _first_started(conn: Connection, where: CallFilter) -> datetime | None:
    first = conn.execute(where.apply(select(func.min(Call.started_at)))).scalar()
    if first is None:
        return None
    return datetime(first.year, first.month, first.day)


def _window_partials(
    conn: Connection,
    dialect: DialectSupport,
    where: CallFilter,
    since: datetime,
    until: datetime,
    now: datetime,
    cache: StatsCache | None,
) -> list[DayPartial]:
    """Partials for each day of ``[since, until)``: whole past days from the cache."""
    today = datetime(now.year, now.month, now.day)
    key = _filter_key(where)
    start_day = datetime(since.year, since.month, since.day)
    partials: dict[str, DayPartial] = {}
    missing_whole: list[datetime] = []
    raw_segments: list[tuple[datetime, datetime]] = []
    day = start_day
    while day < until:
        nxt = day + timedelta(days=1)
        whole = day >= since and nxt <= until and nxt <= today
        if whole:
            cached = cache.get(key, day_of(day)) if cache else None
            if cached is not None:
                partials[day_of(day)] = cached
            else:
                missing_whole.append(day)
        else:
            raw_segments.append((max(day, since), min(nxt, until)))
        day = nxt
    for lo, hi in _runs(missing_whole):
        computed = _partials(conn, dialect, replace(where, since=lo, until=hi))
        for d in _days(lo, hi):
            partial = computed.get(d, _empty_partial(d))
            partials[d] = partial
            if cache is not None:
                cache.put(key, d, partial)
    for lo, hi in raw_segments:
        computed = _partials(conn, dialect, replace(where, since=lo, until=hi))
        partials.update(computed)
    return [partials[d] for d in sorted(partials)]


def _runs(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of days as ``[start, end)`` ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for d in days:
        if runs and runs[-1][1] == d:
            runs[-1] = (runs[-1][0], d + timedelta(days=1))
        else:
            runs.append((d, d + timedelta(days=1)))
    return runs


def _days(lo: datetime, hi: datetime) -> list[str]:
    out = []
    while lo < hi:
        out.append(day_of(lo))
        lo += timedelta(days=1)
    return out


def _filter_key(where: CallFilter) -> str:
    return f"{where.outcome or ''}|{where.intent or ''}|{where.transport or ''}"


# Per-day partials (SQL)


def _empty_partial(day: str) -> DayPartial:
    return {
        "day": day,
        "calls": 0,
        **dict.fromkeys(OUTCOME_NAMES, 0),
        "duration_sum": 0.0,
        "turns_sum": 0,
        "reasons": {},
        "intents": {},
        "confidence": [[0, 0, 0, 0] for _ in range(CONFIDENCE_BINS)],
        "latency": {},
    }


def _partials(
    conn: Connection, dialect: DialectSupport, where: CallFilter
) -> dict[str, DayPartial]:
    """Aggregates per day of the calls and turns ``where`` selects."""
    out: dict[str, DayPartial] = {}

    def partial(day: Any) -> DayPartial:
        key = str(day)
        if key not in out:
            out[key] = _empty_partial(key)
        return out[key]

    call_day = dialect.day(Call.started_at).label("day")
    counts = [
        func.sum(case((Call.outcome == name, 1), else_=0)).label(name) for name in OUTCOME_NAMES
    ]
    stmt = where.apply(
        select(
            call_day,
            func.count().label("calls"),
            *counts,
            func.sum(Call.duration_secs).label("duration"),
            func.sum(Call.turn_count).label("turns"),
        ).select_from(Call)
    ).group_by(call_day)
    for row in conn.execute(stmt):
        p = partial(row.day)
        p["calls"] = int(row.calls)
        for name in OUTCOME_NAMES:
            p[name] = int(getattr(row, name) or 0)
        p["duration_sum"] = float(row.duration or 0)
        p["turns_sum"] = int(row.turns or 0)

    reason = func.coalesce(Call.escalation_reason, Call.escalation_trigger, "unspecified")
    stmt = (
        where.apply(select(call_day, reason.label("reason"), func.count().label("n")))
        .where(Call.outcome == "escalated")
        .group_by(call_day, reason)
    )
    for row in conn.execute(stmt):
        partial(row.day)["reasons"][row.reason] = int(row.n)

    turn_day = dialect.day(Turn.started_at).label("day")
    stmt = (
        _caller_turns(where, turn_day, Turn.intent, func.count().label("n"))
        .where(Turn.intent.is_not(None))
        .group_by(turn_day, Turn.intent)
    )
    for row in conn.execute(stmt):
        partial(row.day)["intents"][row.intent] = int(row.n)

    capped = case((Turn.confidence >= 1.0, 0.999999), else_=Turn.confidence)
    bucket = dialect.bucket(capped, 1.0 / CONFIDENCE_BINS).label("b")
    bands = [func.sum(case((Turn.band == band, 1), else_=0)).label(band) for band in BANDS]
    stmt = (
        _caller_turns(where, turn_day, bucket, func.count().label("n"), *bands)
        .where(and_(Turn.confidence.is_not(None), Turn.confidence >= 0))
        .group_by(turn_day, bucket)
    )
    for row in conn.execute(stmt):
        i = min(max(int(row.b), 0), CONFIDENCE_BINS - 1)
        cell = partial(row.day)["confidence"][i]
        cell[0] += int(row.n)
        for k, band in enumerate(BANDS, start=1):
            cell[k] += int(getattr(row, band) or 0)

    _latency_histograms(conn, dialect, where, turn_day, partial)
    return out


def _latency_histograms(
    conn: Connection, dialect: DialectSupport, where: CallFilter, turn_day: Any, partial: Any
) -> None:
    """Per day and stage, how many turns fell in each :data:`BUCKET_MS` bucket.

    Counted in SQL (one grouped query per stage), so only the histograms, not the
    turns, come back to Python: the database does the scanning while the event
    loop of a live call keeps the interpreter.
    """
    for name, column in LATENCY_COLUMNS.items():
        bucket = dialect.bucket(column, BUCKET_MS).label("b")
        stmt = (
            _caller_turns(where, turn_day, bucket, func.count().label("n"))
            .where(column.is_not(None), column >= 0)
            .group_by(turn_day, bucket)
        )
        for row in conn.execute(stmt):
            partial(row.day)["latency"].setdefault(name, {})[str(int(row.b))] = int(row.n)


def _caller_turns(where: CallFilter, *columns: Any) -> Any:
    return where.apply_to_turns(select(*columns).select_from(Turn)).where(Turn.kind == "caller")


def _slowest_turns(conn: Connection, where: CallFilter) -> list[dict[str, Any]]:
    stmt = (
        _caller_turns(
            where,
            Turn.call_id,
            Turn.seq,
            Turn.started_at,
            Turn.intent,
            Turn.latency_ms,
            *STAGE_COLUMNS.values(),
        )
        .where(Turn.latency_ms.is_not(None))
        .order_by(Turn.latency_ms.desc())
        .limit(SLOWEST_TURNS)
    )
    return [
        {
            "call_id": r.call_id,
            "seq": r.seq,
            "started_at": iso(r.started_at),
            "intent": r.intent,
            "latency_ms": r.latency_ms,
            "stages_ms": {name: getattr(r, f"{name}_ms") for name in STAGE_COLUMNS},
        }
        for r in conn.execute(stmt)
    ]


# Merging


def _merge(partials: Sequence[DayPartial]) -> dict[str, Any]:
    totals: dict[str, float] = {"calls": 0, **dict.fromkeys(OUTCOME_NAMES, 0)}
    duration = turns = 0.0
    reasons: dict[str, int] = defaultdict(int)
    intents: dict[str, int] = defaultdict(int)
    confidence = [[0, 0, 0, 0] for _ in range(CONFIDENCE_BINS)]
    latency_all: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    per_day = []
    latency_per_day = []
    for p in partials:
        ended = sum(p[n] for n in OUTCOME_NAMES)
        if p["calls"]:
            per_day.append(
                {
                    "day": p["day"],
                    "calls": p["calls"],
                    **{n: p[n] for n in OUTCOME_NAMES},
                    "resolution_rate": _rate(p["resolved"], ended),
                    "escalation_rate": _rate(p["escalated"], ended),
                }
            )
        totals["calls"] += p["calls"]
        for n in OUTCOME_NAMES:
            totals[n] += p[n]
        duration += p["duration_sum"]
        turns += p["turns_sum"]
        for k, v in p["reasons"].items():
            reasons[k] += v
        for k, v in p["intents"].items():
            intents[k] += v
        for i, cell in enumerate(p["confidence"]):
            for k in range(4):
                confidence[i][k] += cell[k]
        day_stages = {}
        for name, hist in p["latency"].items():
            for b, n in hist.items():
                latency_all[name][int(b)] += n
            day_stages[name] = _quantiles({int(b): n for b, n in hist.items()})
        if day_stages:
            latency_per_day.append({"day": p["day"], "stages": day_stages})
    ended = sum(totals[n] for n in OUTCOME_NAMES)
    width = 1.0 / CONFIDENCE_BINS
    return {
        "totals": {
            "calls": int(totals["calls"]),
            **{n: int(totals[n]) for n in OUTCOME_NAMES},
            "in_progress": int(totals["calls"] - ended),
            "resolution_rate": _rate(totals["resolved"], ended),
            "escalation_rate": _rate(totals["escalated"], ended),
            "avg_duration_secs": round(duration / ended, 1) if ended else None,
            "avg_turns": round(turns / totals["calls"], 2) if totals["calls"] else None,
        },
        "per_day": per_day,
        "escalation_reasons": [
            {"reason": k, "count": v}
            for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:TOP_REASONS]
        ],
        "intents": [
            {"intent": k, "count": v}
            for k, v in sorted(intents.items(), key=lambda kv: -kv[1])[:TOP_INTENTS]
        ],
        "confidence_histogram": [
            {
                "low": round(i * width, 2),
                "high": round((i + 1) * width, 2),
                "count": cell[0],
                **{band: cell[k] for k, band in enumerate(BANDS, start=1)},
            }
            for i, cell in enumerate(confidence)
        ],
        "latency": {
            "stages": list(LATENCY_COLUMNS),
            "resolution_ms": BUCKET_MS,
            "overall": {name: _quantiles(h) for name, h in latency_all.items()},
            "per_day": latency_per_day,
        },
    }


def _quantiles(histogram: dict[int, int]) -> dict[str, float | None]:
    """p50 and p95 from ``{bucket: count}``, interpolated inside the bucket.

    Differs from :func:`integrations.percentile.percentile` (the project's definition):
    only these :data:`BUCKET_MS` counts leave SQL, not the raw latencies, so this is the
    histogram estimate (rank ``q * n``, a bucket's turns taken as spread evenly across
    it). On a few hundred turns or more it lies within about one bucket of the linear
    percentile of the raw values (measured: within 5 ms from 200 lognormal turns on);
    on a few dozen turns the two can be 100 ms or more apart, the tail being sparse.
    """
    items = sorted(histogram.items())
    total = sum(n for _, n in items)
    out: dict[str, float | None] = {}
    for q in QUANTILES:
        name = f"p{round(q * 100)}"
        if not total:
            out[name] = None
            continue
        rank = q * total
        seen = 0
        value = (items[-1][0] + 1) * BUCKET_MS
        for b, n in items:
            if seen + n >= rank:
                value = (b + (rank - seen) / n) * BUCKET_MS
                break
            seen += n
        out[name] = round(value, 1)
    return out


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None
