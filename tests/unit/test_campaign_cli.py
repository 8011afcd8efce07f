"""`callagent campaign ...` and `callagent dnc ...` on the settings' database."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bot.cli import main

CSV = "phone,first_name,appointment\n+12125550101,Maria,Fri 10am\n+12125550102,Omar,Mon 9am\n"


@pytest.fixture
def contacts(data_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(CSV + "nope,Ann,Tue\n+12125550104,Bob,\n", encoding="utf-8")
    return path


def create(contacts: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = main(
        [
            "campaign",
            "create",
            "--agent",
            "dental_front_desk",
            "--csv",
            str(contacts),
            "--json",
            *extra,
        ]
    )
    assert code == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)["id"]


def test_create_names_bad_rows_by_line(
    contacts: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "bot.cli.campaign.agent_variables", lambda _s, _k: ("first_name", "appointment")
    )
    args = ["campaign", "create", "--agent", "dental_front_desk", "--csv", str(contacts)]
    changed: list[str] = []
    monkeypatch.setattr("bot.cli.campaign.on_campaign_changed", lambda _s: changed.append)
    assert main([*args, "--window", "mon-fri 09:00-12:00,13:00-19:00", "--holidays", "US"]) == 0
    out = capsys.readouterr().out
    assert "2 contacts imported" in out
    assert "line 4: invalid phone number" in out
    assert "line 5: missing variable 'appointment' (the script uses it)" in out
    assert len(changed) == 1 and out.startswith(f"campaign {changed[0]} created")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--window", "weekdays 9-5"], "--window"),
        (["--timezone", "Mars/Base"], "--timezone"),
        (["--holidays", "ZZ"], "--holidays"),
        (["--max-concurrent", "0"], "--max-concurrent"),
        (["--cps", "0"], "--cps"),
        (["--retry", "no-answer=twice"], "--retry"),
        (["--webhook", "ftp://x"], "--webhook"),
        (["--agent", "../etc/passwd"], "--agent"),
        (["--agent", "nobody"], "--agent"),
    ],
)
def test_bad_flags_are_named(
    contacts: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    args = ["campaign", "create", "--agent", "dental_front_desk", "--csv", str(contacts), *flags]
    assert main(args) == 2
    assert f"callagent campaign create: {named}" in capsys.readouterr().err


def test_a_missing_file_is_named(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["campaign", "create", "--agent", "dental_front_desk", "--csv", "nowhere.csv"]
    assert main(args) == 2
    assert "--csv nowhere.csv: cannot read it" in capsys.readouterr().err


def test_list_show_pause_resume_cancel_export(
    contacts: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    campaign_id = create(contacts, capsys)
    assert main(["campaign", "list"]) == 0
    assert campaign_id in capsys.readouterr().out
    assert main(["campaign", "show", campaign_id]) == 0
    out = capsys.readouterr().out
    assert "3 contacts: pending 3" in out and "+12125550101" in out  # no variables needed
    assert main(["campaign", "pause", campaign_id]) == 0
    assert f"campaign {campaign_id} paused" in capsys.readouterr().out
    assert main(["campaign", "resume", campaign_id]) == 0
    assert main(["campaign", "cancel", campaign_id]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["campaign", "resume", campaign_id]) == 2
    assert "cannot be resumed" in capsys.readouterr().err
    assert main(["campaign", "show", "cp_nope"]) == 2
    assert "no campaign cp_nope" in capsys.readouterr().err
    out_file = tmp_path / "results.csv"
    assert main(["campaign", "export", campaign_id, "-o", str(out_file)]) == 0
    rows = list(csv.DictReader(out_file.open(encoding="utf-8")))
    assert [(r["phone"], r["state"], r["var_first_name"]) for r in rows] == [
        ("+12125550101", "cancelled", "Maria"),
        ("+12125550102", "cancelled", "Omar"),
        ("+12125550104", "cancelled", "Bob"),
    ]
    capsys.readouterr()
    assert main(["campaign", "export", campaign_id, "--format", "jsonl"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["variables"] == {"first_name": "Maria", "appointment": "Fri 10am"}
    assert {"id", "attempts", "disposition", "last_provider_call_id"} <= set(lines[0])


def test_dnc_add_remove_import_list(
    data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["dnc", "add", "(212) 555-0101"]) == 0
    assert main(["dnc", "add", "+12125550101"]) == 0
    assert "already on" in capsys.readouterr().out
    assert main(["dnc", "add", "hello"]) == 2
    assert "NUMBER: not a phone number" in capsys.readouterr().err
    listed = tmp_path / "dnc.csv"
    listed.write_text("name,phone\nA,+12125550102\nB,junk\nC,+12125550101\n", encoding="utf-8")
    assert main(["dnc", "import", str(listed)]) == 0
    captured = capsys.readouterr()
    assert "1 numbers added (1 already listed, 1 bad)" in captured.out
    assert "line 3: not a phone number" in captured.err
    assert main(["dnc", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 2
    assert main(["dnc", "remove", "+12125550102"]) == 0
    assert main(["dnc", "remove", "+12125550102"]) == 1


def test_a_listed_number_is_not_imported(
    contacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dnc", "add", "+12125550102"]) == 0
    capsys.readouterr()
    args = ["campaign", "create", "--agent", "dental_front_desk", "--csv", str(contacts)]
    assert main(args) == 0
    assert "line 3: number on the do-not-call list (not imported)" in capsys.readouterr().out
