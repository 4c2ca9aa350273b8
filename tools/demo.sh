#!/usr/bin/env bash
# Run the demo app on http://127.0.0.1:5000/ (installs what is needed first).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
exec .venv/bin/python examples/demo/app.py "$@"
