from datetime import datetime, timedelta

import pytest

from bot.cli import main
from integrations.crm.base import CallOutcome, CRMError, normalize_phone
from integrations.crm.sqlite_crm import CSVImportError, SQLiteCRM


@pytest.fixture
def crm(tmp_path):
    return SQLiteCRM(tmp_path / "crm.db", seed_demo=True)


@pytest.mark.parametrize(
    "identity",
    ["+15555550123", "(555) 555-0123", "555-555-0123", "cus_1001", "maria.garcia@example.com"],
)
async def test_lookup_by_phone_in_any_format_id_or_email(crm, identity):
    record = await crm.lookup(identity)
    assert record is not None and record.customer_id == "cus_1001"
    assert record.first_name == "Maria" and record.account_status == "active"
    assert record.next_appointment().kind == "cleaning"
    assert record.interactions and record.secrets["pin"] == "4729"


async def test_unknown_caller_is_none(crm):
    assert await crm.lookup("+15555550999") is None
    assert await crm.lookup("") is None


async def test_record_has_cases_and_pending_actions(crm):
    record = await crm.lookup("+15555550171")
    assert [c.subject for c in record.open_cases] == ["Insurance claim for crown rejected"]
    assert record.pending_actions[0].kind == "callback"
    summary = record.summary()
    assert "pin" not in str(summary) and "1992" not in str(summary)  # no secrets in summaries
    assert "Priya" not in repr(record)  # caller data stays out of reprs (and so logs)


async def test_write_backs(crm):
    new_time = (datetime.now() + timedelta(days=10)).replace(
        hour=11, minute=0, second=0, microsecond=0
    )
    await crm.move_appointment("cus_1001", "apt_2001", new_time)
    record = await crm.lookup("cus_1001")
    assert any(
        a.id == "apt_2001" and a.starts_at.replace(tzinfo=None) == new_time
        for a in record.appointments
    )
    await crm.cancel_appointment("cus_1001", "apt_2001")
    record = await crm.lookup("cus_1001")
    assert all(a.id != "apt_2001" for a in record.appointments)
    await crm.log_call(
        "cus_1001",
        CallOutcome("c1", "transferred", ("talk_to_human",), "AI agent call", datetime.now()),
    )
    await crm.add_pending_action("cus_1001", "callback", "Transfer failed")
    record = await crm.lookup("cus_1001")
    assert record.interactions[0].outcome == "transferred"
    assert any(p.kind == "callback" for p in record.pending_actions)
    with pytest.raises(CRMError):
        await crm.cancel_appointment("cus_1002", "apt_2002")  # not this customer's


def test_csv_load_customers_and_appointments(tmp_path):
    crm = SQLiteCRM(tmp_path / "crm.db")
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "id,first_name,last_name,phone,email,date_of_birth,pin,account_status\n"
        "c1,Ana,Silva,(555) 555-0177,Ana@Example.com,1990-01-02,1111,active\n"
        ",Bo,Lee,+1 555 555 0178,,,,overdue\n"
    )
    appointments = tmp_path / "appointments.csv"
    soon = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    appointments.write_text(f"customer_id,starts_at,kind,provider\nc1,{soon},checkup,Dr. Patel\n")
    assert crm.load_csv(customers) == ("customers", 2)
    assert crm.load_csv(appointments) == ("appointments", 1)
    record = crm.lookup_sync("5555550177")
    assert record.customer_id == "c1" and record.email == "ana@example.com"
    assert record.next_appointment().provider == "Dr. Patel"
    assert crm.lookup_sync("+15555550178").account_status == "overdue"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("id,first_name,phone\nx,Al,not-a-number\n", "line 2: column 'phone'"),
        ("id,first_name,phone,shoe_size\nx,Al,5555550100,9\n", "shoe_size"),
        ("customer_id,starts_at\nc1,next tuesday\n", "line 2: column 'starts_at'"),
        ("foo,bar\n1,2\n", "--table"),
    ],
)
def test_csv_errors_name_line_and_column_not_values(tmp_path, text, named):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CSVImportError) as info:
        SQLiteCRM(tmp_path / "crm.db").load_csv(path)
    assert named in str(info.value)
    assert "not-a-number" not in str(info.value)


def test_cli_seed_and_load(tmp_path, capsys):
    db = tmp_path / "crm.db"
    assert main(["crm", "seed", "--db", str(db)]) == 0
    assert "6 customers" in capsys.readouterr().out
    csv = tmp_path / "more.csv"
    csv.write_text("id,first_name,phone\nc9,Zed,5555550166\n")
    assert main(["crm", "load", str(csv), "--db", str(db)]) == 0
    assert "imported 1 customers" in capsys.readouterr().out
    assert SQLiteCRM(db).count("customers") == 7
    bad = tmp_path / "bad.csv"
    bad.write_text("id,first_name,phone\nc9,Zed,xx\n")
    assert main(["crm", "load", str(bad), "--db", str(db)]) == 2


def test_phone_normalisation():
    assert normalize_phone("(555) 555-0123") == "+15555550123"
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"
    assert normalize_phone("cus_1001") is None
