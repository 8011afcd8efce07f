"""Record operations and their one line of JSON (the spool's and the journal's format)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
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


def read_ops(
    path: Path, on_bad_line: Callable[[str], None], *, skip_blank: bool = False
) -> list[Op]:
    """The operations in a JSON-lines file, in order.

    Args:
        path: The file (the spool or a journal).
        on_bad_line: Given each line that cannot be read (cut short by a crash).
        skip_blank: Pass over blank lines instead of handing them to ``on_bad_line``.
    """
    ops: list[Op] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if skip_blank and not line.strip():
            continue
        try:
            ops.append(decode_op(line))
        except Exception:  # noqa: BLE001 - a torn last line after a crash
            on_bad_line(line)
    return ops
