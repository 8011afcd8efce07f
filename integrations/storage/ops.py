"""Record operations and their one line of JSON (the spool's and the journal's format)."""

from __future__ import annotations

import json
from typing import Any

from integrations.storage.records import CallEnd, CallStart, CallUpdate, TurnRecord

Record = CallStart | TurnRecord | CallUpdate | CallEnd
Op = tuple[str, Record]
"""An operation: its kind (``start``, ``turn``, ``update``, ``end``) and its record."""

OP_TYPES: dict[str, type[Any]] = {
    "start": CallStart,
    "turn": TurnRecord,
    "update": CallUpdate,
    "end": CallEnd,
}


def encode_op(op: Op, **extra: Any) -> str:
    """One operation as a JSON line (with its newline)."""
    kind, record = op
    return json.dumps({"op": kind, "record": record.to_dict(), **extra}) + "\n"


def decode_op(line: str) -> Op:
    """An operation back from :func:`encode_op` (raises on a torn or unknown line)."""
    item = json.loads(line)
    return item["op"], OP_TYPES[item["op"]].from_dict(item["record"])
