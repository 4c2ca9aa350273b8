#!/usr/bin/env bash
# Make a fresh machine ready: system services for the tests, and .venv with every member installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done < tools/apt-packages.txt
if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${need_apt[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# All members in ONE command, so no member is ever fetched from the public index (see SERVICES.md).
.venv/bin/python -m pip install -q \
  -e packages/aquests[all] \
  -e 'packages/skitai-core[all]' \
  -e packages/saddle \
  -e packages/skitai-gateway \
  -e packages/skitai-smtpda \
  -r tools/requirements-dev.txt
