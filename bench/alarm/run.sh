#!/bin/bash
# The alarm's lab check: both configs (the control shares the upstream stages by a copy of the
# run directory, so only its policy stage runs), then rlxf.audit.alarm_lab over both.
#   bench/alarm/run.sh [OUT_DIR]   (default runs/alarm)
set -euo pipefail
out=${1:-runs/alarm}
py=${PYTHON:-.venv/bin/python}
$py -m rlxf run bench/alarm/ppo_small_kl.toml --out "$out/small_kl" --until policy
rm -rf "$out/large_kl" && cp -a "$out/small_kl" "$out/large_kl"
$py -m rlxf run bench/alarm/ppo_large_kl.toml --out "$out/large_kl" --until policy
$py -m rlxf.audit.alarm_lab "$out/small_kl" "$out/large_kl" --json "$out/alarm_lab.json"
