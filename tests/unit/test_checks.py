"""The checks scripts/test.sh runs before the tests report what they are there to catch.

Each test plants one violation in a scratch copy of the project (its packages and its
pyproject.toml, so the project's own configuration judges it) and runs the tool as the
script does.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "processors", "integrations", "transports", "simulator")
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's packages and pyproject.toml."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return run([tool("lint-imports"), "--no-cache", "--no-logo"], project)


def test_the_import_contracts_hold_on_the_project(project: Path) -> None:
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("integrations/planted.py", "import processors.frames\n", "Layers"),
        ("transports/planted.py", "import processors.frames\n", "Layers"),
        ("processors/planted.py", "import transports.twilio\n", "Layers"),
        ("processors/planted.py", "import bot.settings\n", "Layers"),
        ("bot/planted.py", "import simulator.phone\n", "Nothing shipped imports the simulator"),
        (
            "bot/call/planted.py",
            "import bot.call.pipeline\n",
            "No import cycles inside any package",
        ),
    ],
)
def test_a_planted_import_breaks_its_contract(
    project: Path, module: str, source: str, contract: str
) -> None:
    if module == "bot/call/planted.py":
        # runtime.py is what pipeline.py builds on: importing back closes a cycle
        runtime = project / "bot/call/runtime.py"
        runtime.write_text(runtime.read_text() + "\nimport bot.call.planted  # noqa: E402\n")
    (project / module).write_text(source)
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout
    assert "planted" in result.stdout


def test_ruff_reports_a_lint_error(project: Path) -> None:
    (project / "integrations/planted.py").write_text('"""Planted."""\n\nimport os\n')
    result = run([tool("ruff"), "check", "--no-cache", "integrations/planted.py"], project)
    assert result.returncode == 1
    assert "F401" in result.stdout


def test_ruff_format_reports_unformatted_code(project: Path) -> None:
    (project / "integrations/planted.py").write_text('"""Planted."""\n\nX = {  "a":1 }\n')
    result = run([tool("ruff"), "format", "--check", "integrations/planted.py"], project)
    assert result.returncode == 1
    assert "planted.py" in result.stdout


def test_pyright_reports_a_type_error(project: Path) -> None:
    (project / "integrations/planted.py").write_text('"""Planted."""\n\nCOUNT: int = "three"\n')
    venv = ROOT / ".venv"
    if venv.exists():
        (project / ".venv").symlink_to(venv)
    result = run([tool("pyright"), "integrations/planted.py"], project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "planted.py" in result.stdout
    assert "1 error" in result.stdout
