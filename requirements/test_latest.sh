#!/usr/bin/env bash
# `make test-latest`: the test suite on the newest releases of rlxf's dependencies (transformers,
# TRL within pyproject's range, peft, accelerate, everything else), not the locked ones: it says
# what breaks before a user's fresh `pip install rlxf` meets it. One fresh venv per Python
# (.venv-latest/python3.X) for 3.11 and, where the interpreter exists, 3.12. torch stays 2.13.0:
# its CPU build is the torch this machine has for 3.11; on 3.12 pip takes the same release from
# PyPI as its CUDA build (several GB, run on the CPU). PYTEST_ARGS narrows the suite; PYTHONS
# chooses the interpreters; LATEST_REUSE_VENV=1 upgrades the existing venvs instead of new ones.
# Exit status 1 if any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-torch==2.13.0}
PYTEST_ARGS=${PYTEST_ARGS:--q}
PYTHONS=${PYTHONS:-3.11 3.12}

interpreter() {  # python3.X that runs (pyenv's shim exits non-zero for a version not selected)
  local candidate
  for candidate in "python$1" "$HOME"/.pyenv/versions/"$1".*/bin/"python$1"; do
    if "$candidate" -c "" >/dev/null 2>&1; then echo "$candidate"; return 0; fi
  done
  return 1
}

results=()
status=0
for version in $PYTHONS; do
  if ! py=$(interpreter "$version"); then
    results+=("python$version: not installed here, not checked")
    continue
  fi
  venv=.venv-latest/python$version
  echo "== test-latest: python$version ($py) in $venv"
  [ "${LATEST_REUSE_VENV:-0}" = 1 ] || rm -rf "$venv"
  # Everything else is upgraded to its newest release; torch is held where $TORCH put it.
  if ! { { [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"; } &&
         "$venv/bin/pip" install --quiet --upgrade pip &&
         "$venv/bin/pip" install --quiet "$TORCH" &&
         "$venv/bin/python" -c 'from importlib.metadata import version; print("torch==" + version("torch"))' > "$venv/torch-held.txt" &&
         "$venv/bin/pip" install --quiet --upgrade --upgrade-strategy eager \
           -c "$venv/torch-held.txt" -e '.[test]'; }; then
    results+=("python$version: install FAILED (pip's message above)")
    status=1
    continue
  fi
  "$venv/bin/python" requirements/versions_vs_lock.py requirements/lock.txt | tee "$venv/versions.txt"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pytest $PYTEST_ARGS -rfE -p no:cacheprovider 2>&1 | tee "$venv/pytest.log"
  code=${PIPESTATUS[0]}
  outcome=$(grep -Eo '([0-9]+ (passed|failed|errors?)|no tests ran).*' "$venv/pytest.log" | tail -1)
  if [ "$code" -eq 0 ]; then
    results+=("python$version: passed ($outcome)")
  else
    status=1
    broke=$(grep -E '^(FAILED|ERROR) ' "$venv/pytest.log" | sed 's/^/    /')
    results+=("python$version: BROKE ($outcome); log $venv/pytest.log"$'\n'"$broke")
  fi
done

echo "== test-latest summary (versions against the lock: .venv-latest/python3.X/versions.txt)"
printf '%s\n' "${results[@]}"
[ "$status" -eq 0 ] && echo "All passed: to move the lock, drop the holds in requirements/holds.txt whose reason is gone and run \`make lock\`."
exit "$status"
