#!/usr/bin/env bash
# Make the benchmark machine ready: system tools, peer venvs, static files, a TLS certificate.
# Idempotent and quick when everything is already there. Peers live in tools/bench/.peers/ (gitignored),
# never in the project's .venv. The original skitai 0.57 gets its own venv: the one place where our
# distribution names come from the public index, isolated so they can never shadow the checkout.
set -uo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
PEERS="$BENCH/.peers"
PY=${PYTHON:-python3}
mkdir -p "$PEERS"

# -- system packages
need=()
for pkg in wrk nginx nghttp2-client postgresql redis-server openssl taskset; do
  case $pkg in taskset) command -v taskset >/dev/null || need+=(util-linux) ;;
    *) dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg") ;; esac
done
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: please install: ${need[*]}" >&2
  fi
fi

# -- the project's own venv (skitai, aquests from the checkout)
[[ -x "$ROOT/.venv/bin/python" ]] || "$ROOT/tools/bootstrap.sh"

# -- peers: one venv for every third-party server and client we compare with
PEER_PKGS=(waitress gunicorn 'uvicorn[standard]' uvloop httptools hypercorn aiohttp 'httpx[http2]'
           asyncpg redis websockets psycopg2-binary requests)
if [[ "$(cat "$PEERS/peers/.ok" 2>/dev/null)" != "${PEER_PKGS[*]}" ]]; then
  [[ -x "$PEERS/peers/bin/python" ]] || "$PY" -m venv "$PEERS/peers"
  "$PEERS/peers/bin/pip" install -q --upgrade pip
  if "$PEERS/peers/bin/pip" install -q "${PEER_PKGS[@]}"; then
    echo "${PEER_PKGS[*]}" >"$PEERS/peers/.ok"
  else
    echo "setup: peer venv install failed" >&2
  fi
fi

# -- the original skitai 0.57 (newest 0.57.x on the index), alone in its venv
if [[ ! -f "$PEERS/skitai057/.ok" && ! -f "$PEERS/skitai057/.failed" ]]; then
  "$PY" -m venv "$PEERS/skitai057"
  "$PEERS/skitai057/bin/pip" install -q --upgrade pip
  if "$PEERS/skitai057/bin/pip" install -q 'skitai==0.57.*' >"$PEERS/skitai057/install.log" 2>&1 \
     && "$PEERS/skitai057/bin/python" -c 'import skitai' >>"$PEERS/skitai057/install.log" 2>&1; then
    touch "$PEERS/skitai057/.ok"
  else
    tail -5 "$PEERS/skitai057/install.log" >"$PEERS/skitai057/.failed"
    echo "setup: original skitai 0.57 unavailable: $(tail -1 "$PEERS/skitai057/.failed")" >&2
  fi
fi

# -- static files (deterministic bytes) and a self-signed certificate for TLS runs
"$PY" "$BENCH/apps/make_static.py" "$PEERS/www"
if [[ ! -f "$PEERS/tls/cert.pem" ]]; then
  mkdir -p "$PEERS/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$PEERS/tls/key.pem" -out "$PEERS/tls/cert.pem" 2>/dev/null
fi
exit 0
