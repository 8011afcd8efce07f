"""Export call records: one strategy class per output format.

- :class:`JsonlExporter`: one JSON object per call, turns nested (lossless).
- :class:`CsvTurnsExporter`: one row per turn, the call's fields repeated (for spreadsheets).
- :class:`CsvCallsExporter`: one row per call.
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from integrations.storage.records import STAGES

CALL_FIELDS: tuple[str, ...] = (
    "id",
    "started_at",
    "ended_at",
    "duration_secs",
    "transport",
    "direction",
    "caller",
    "agent",
    "outcome",
    "end_reason",
    "turn_count",
    "primary_intent",
    "crm_prefetch_ms",
    "escalation_trigger",
    "escalation_reason",
    "transfer_result",
    "provider_call_id",
    "campaign_id",
    "contact_id",
    "attempt",
    "amd_verdict",
    "amd_ms",
    "disposition",
)
TURN_FIELDS = (
    "seq",
    "kind",
    "turn_started_at",
    "caller_text",
    "bot_text",
    "intent",
    "confidence",
    "runner_up",
    "margin",
    "band",
    "path",
    "entities",
    "reply_intent",
    "interrupted",
    "latency_ms",
    *(f"{s}_ms" for s in STAGES),
)


class Exporter(ABC):
    """Writes calls (as :func:`queries.call_detail` dicts) to a text stream."""

    @abstractmethod
    def write(
        self, calls: Iterable[dict[str, Any]], out: TextIO, progress: Callable[[], object]
    ) -> int:
        """Write every call; call ``progress()`` after each. Returns the number of calls."""


class JsonlExporter(Exporter):
    """One JSON object per line per call, with its turns."""

    def write(
        self, calls: Iterable[dict[str, Any]], out: TextIO, progress: Callable[[], object]
    ) -> int:
        """Write JSON lines."""
        n = 0
        for call in calls:
            out.write(json.dumps(call, ensure_ascii=False) + "\n")
            n += 1
            progress()
        return n


def _call_columns(call: dict[str, Any]) -> dict[str, Any]:
    escalation = call.get("escalation") or {}
    row = {k: call.get(k) for k in CALL_FIELDS}
    row["escalation_trigger"] = escalation.get("trigger")
    row["escalation_reason"] = escalation.get("reason") or call.get("escalation_reason")
    row["transfer_result"] = escalation.get("transfer_result")
    return row


class CsvCallsExporter(Exporter):
    """One CSV row per call."""

    def write(
        self, calls: Iterable[dict[str, Any]], out: TextIO, progress: Callable[[], object]
    ) -> int:
        """Write CSV with a header row."""
        writer = csv.DictWriter(out, fieldnames=list(CALL_FIELDS))
        writer.writeheader()
        n = 0
        for call in calls:
            writer.writerow(_call_columns(call))
            n += 1
            progress()
        return n


class CsvTurnsExporter(Exporter):
    """One CSV row per turn, prefixed by its call's columns."""

    def write(
        self, calls: Iterable[dict[str, Any]], out: TextIO, progress: Callable[[], object]
    ) -> int:
        """Write CSV with a header row (calls without turns get one row with empty turn fields)."""
        fields = [f"call_{k}" if k == "id" else k for k in CALL_FIELDS] + list(TURN_FIELDS)
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        n = 0
        for call in calls:
            base = {("call_id" if k == "id" else k): v for k, v in _call_columns(call).items()}
            for turn in call.get("turns") or [{}]:
                row = dict(base)
                for key in TURN_FIELDS:
                    if key == "turn_started_at":
                        row[key] = turn.get("started_at")
                    elif key.endswith("_ms") and key != "latency_ms":
                        row[key] = (turn.get("stages_ms") or {}).get(key[:-3])
                    elif key == "entities":
                        row[key] = json.dumps(turn.get("entities") or {}, ensure_ascii=False)
                    else:
                        row[key] = turn.get(key)
                writer.writerow(row)
            n += 1
            progress()
        return n


EXPORTERS: dict[str, type[Exporter]] = {
    "jsonl": JsonlExporter,
    "csv": CsvTurnsExporter,
    "csv-calls": CsvCallsExporter,
}
"""Exporters by ``--format`` name."""
