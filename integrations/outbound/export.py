"""Export a campaign's per-contact results: one strategy class per format.

Each contact: its id, CSV line, phone, time zone, variables, state, attempts, final (or
latest) disposition, and its latest attempt's provider call id (Twilio ``CallSid``),
call record id and times. The export carries personal data (it is the operator's own
list back); it is written where the operator asks and never logged.
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TextIO

from integrations.outbound.campaign_types import Contact

FIELDS = (
    "id",
    "line",
    "phone",
    "timezone",
    "state",
    "attempts",
    "disposition",
    "last_provider_call_id",
    "last_call_id",
    "last_dialed_at",
    "last_ended_at",
    "last_error_code",
    "next_at",
    "updated_at",
)
VARIABLE_PREFIX = "var_"


class ResultsExporter(ABC):
    """Writes contacts to a text stream; returns how many."""

    media_type: str = "text/plain"

    @abstractmethod
    def write(self, contacts: Iterable[Contact], out: TextIO) -> int:
        """Write every contact."""


class JsonlResultsExporter(ResultsExporter):
    """One JSON object per contact, variables nested."""

    media_type = "application/x-ndjson"

    def write(self, contacts: Iterable[Contact], out: TextIO) -> int:
        """One line per contact."""
        written = 0
        for contact in contacts:
            values = contact.as_json()
            values.pop("campaign_id", None)
            out.write(json.dumps(values, ensure_ascii=False) + "\n")
            written += 1
        return written


class CsvResultsExporter(ResultsExporter):
    """One row per contact; each variable a ``var_<name>`` column.

    The variable columns are those of the whole list (read once to find them, then again
    to write), so every row has the same columns.
    """

    media_type = "text/csv"

    def write(self, contacts: Iterable[Contact], out: TextIO) -> int:
        """Header, then one row per contact."""
        rows = list(contacts)
        names = sorted({name for c in rows for name in c.variables})
        writer = csv.writer(out)
        writer.writerow([*FIELDS, *(VARIABLE_PREFIX + n for n in names)])
        for contact in rows:
            values = contact.as_json()
            writer.writerow(
                [
                    *("" if values[f] is None else values[f] for f in FIELDS),
                    *(contact.variables.get(n, "") for n in names),
                ]
            )
        return len(rows)


RESULT_EXPORTERS: dict[str, type[ResultsExporter]] = {
    "csv": CsvResultsExporter,
    "jsonl": JsonlResultsExporter,
}
