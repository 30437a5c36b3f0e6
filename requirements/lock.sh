#!/usr/bin/env bash
# `make lock`: regenerate requirements/lock.txt, the versions `make install` (demo, test, bench)
# installs. A fresh venv (.venv-lock) gets torch's CPU build first, then rlxf[test] at the newest
# releases pyproject.toml allows except the holds in requirements/holds.txt; the test suite must
# pass there before the venv's versions are written. PYTEST_ARGS narrows the suite (recorded
# in the lock's header); LOCK_REUSE_VENV=1 reruns the suite in the existing .venv-lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
PYTEST_ARGS=${PYTEST_ARGS:--q}
venv=.venv-lock

if [ "${LOCK_REUSE_VENV:-0}" != 1 ] || [ ! -x "$venv/bin/python" ]; then
  echo "lock: fresh $venv on $($PYTHON --version 2>&1)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "$TORCH"
  "$venv/bin/pip" install --quiet -c requirements/holds.txt -e '.[test]'
fi

echo "lock: pytest $PYTEST_ARGS"
log="$venv/pytest.log"
# shellcheck disable=SC2086
if ! "$venv/bin/python" -m pytest $PYTEST_ARGS -p no:cacheprovider 2>&1 | tee "$log"; then
  echo "lock: the suite failed on these versions; requirements/lock.txt is unchanged" >&2
  exit 1
fi
summary=$(grep -Eo '[0-9]+ passed.*' "$log" | tail -1 | sed -E 's/ in [0-9.]+s.*//')

tmp=requirements/lock.txt.tmp
{
  echo "# The tested versions: a pip constraints file for \`make install\` (written by \`make lock\`)."
  echo "# Generated $(date -u +%Y-%m-%d) on Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'),"
  echo "# where \`pytest $PYTEST_ARGS\` gave: $summary. Holds and why: requirements/holds.txt."
  echo "# torch is the CPU build, installed first by the Makefile."
  "$venv/bin/pip" freeze --exclude-editable | grep -v -E '^(-e |#)'
} > "$tmp"
mv "$tmp" requirements/lock.txt
echo "lock: wrote requirements/lock.txt ($(grep -c '==' requirements/lock.txt) packages)"
