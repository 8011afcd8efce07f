#!/usr/bin/env bash
# Install callagent with test dependencies into .venv (and, as root, the Debian
# packages the end-to-end tests drive: chromium, flite, espeak-ng, sox; postgresql for the call-record
# tests; redis-server, which the campaign-queue and shared-state tests start on loopback; haproxy, whose
# configurations the scaling tests check), run the checks (ruff, ruff format, pyright, import contracts), then the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(chromium flite espeak-ng sox iproute2 redis-server haproxy sip-tester baresip-core)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages (browser/e2e tests will be skipped): ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[speech-gpl,tune,test]'
# The checks, before any test: lint, formatting, types (pyright, basic mode, over the packages
# [tool.pyright] includes) and the import contracts of the architecture guide
# ([tool.importlinter] in pyproject.toml).
# Each runs and reports; any violation fails the run before the tests start.
failed=()
run_check() {
  local name="$1"
  shift
  echo "check: $name" >&2
  "$@" || failed+=("$name")
}
run_check "ruff check" .venv/bin/ruff check .
run_check "ruff format" .venv/bin/ruff format --check .
run_check "pyright" .venv/bin/pyright
run_check "import contracts" .venv/bin/lint-imports --no-logo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "checks failed: ${failed[*]}" >&2
  exit 1
fi
# The server tunes its sentence encoder to each agent at its first start (minutes; README
# "Understanding callers"): done once here, so the tests' servers find it cached.
.venv/bin/callagent agent tune bot/agents/*.yaml
# A throw-away PostgreSQL on loopback for the call-record tests (Debian's package, as root).
if [ -z "${CALLAGENT_TEST_DATABASE_URL:-}" ]; then
  pg_env="$(bash scripts/postgres.sh start)" || pg_env=""
  eval "$pg_env"
  trap 'bash scripts/postgres.sh stop "${PG_TEST_DIR:-}"' EXIT
fi
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
