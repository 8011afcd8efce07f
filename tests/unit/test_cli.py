import subprocess
import sys
from pathlib import Path

from tests.support.env import scrubbed_environ

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = scrubbed_environ()
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_with_a_bad_setting_stops_with_the_setting_named():
    result = run_cli("serve", env={"CALLAGENT_TRANSPORT": "livekit"})
    assert result.returncode == 2
    assert "LIVEKIT_URL" in result.stderr and "set it in .env" in result.stderr


def test_config_check_reports_ok_on_defaults():
    result = run_cli("config", "check")
    assert result.returncode == 0, result.stderr
    assert "transport=webrtc" in result.stdout


def test_config_check_names_a_bad_setting_and_its_allowed_values():
    result = run_cli("config", "check", env={"CALLAGENT_CRM": "salesforce"})
    assert result.returncode == 2
    assert "CALLAGENT_CRM=salesforce" in result.stderr and "'hubspot'" in result.stderr


def test_config_example_is_the_committed_env_example():
    result = run_cli("config", "example")
    assert result.stdout == (ROOT / ".env.example").read_text()


def test_procfile_starts_the_same_server_on_port_and_a_campaign_worker():
    assert (ROOT / "Procfile").read_text().splitlines() == [
        "web: callagent serve --host 0.0.0.0 --port $PORT",
        "worker: callagent worker",
    ]


def test_pipecat_runner_entry_point_exists():
    import inspect

    from bot import bot

    assert inspect.iscoroutinefunction(bot.bot)
    assert list(inspect.signature(bot.bot).parameters) == ["runner_args"]


def test_bench_concurrency_rejects_a_negative_start_spread():
    result = run_cli("bench", "concurrency", "--spread", "-1", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "--spread" in result.stderr


def test_call_to_a_server_that_is_not_there_says_so_without_loading_pipecat():
    result = run_cli("call", "+15555550123", "--channel", "sip", "--server", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "cannot reach the server at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
    # a client command: its first line is its own (e2e tests read the attempt id from it)
    assert "Pipecat" not in result.stdout + result.stderr
