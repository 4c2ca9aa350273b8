#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what is needed, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
