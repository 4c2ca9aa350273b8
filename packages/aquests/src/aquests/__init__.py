"""aquests: the async client library of Skitai.

Standalone (the spec's usage)::

    import aquests
    aquests.configure(workers=8, callback=print, timeout=3)
    aquests.get("http://127.0.0.1:8080/")
    aquests.fetchall()

Awaitable (asyncio code)::

    async with aquests.Session() as s:
        r = await s.get("http://127.0.0.1:8080/")
"""

__version__ = "1.0.0.dev0"

from . import aio, codes, queue  # noqa: E402, F401
from .aio import Session  # noqa: E402, F401
from .api import (  # noqa: E402, F401
    add, client, concurrent, configure, countcli, countfin, countreq, delete, fetchall, get, grpc, head,
    mapsize, options, patch, patchform, patchjson, patchnvp, patchxml, post, postform, postjson, postnvp,
    postxml, put, putform, putjson, putnvp, putxml, qsize, rpc, suspend, trace, upload,
)
from .response import Headers, HTTPError, Response  # noqa: E402, F401
from .rpc.grpc import GrpcError  # noqa: E402, F401

# --- db ---
# PostgreSQL, Redis, MongoDB and SQLite3 stubs (owner: aquests-db); drivers load on first use
# (DB_PGSQL, DB_POSTGRESQL, DB_REDIS, DB_MONGODB, DB_SQLITE3 are defined in .dbapi; the misc block's
# import from .members re-exports those same objects)
from .dbapi.response import DBError, DBResponse  # noqa: E402, F401
from .dbapi.stubs import mongodb, pg, postgresql, redis, sqlite3  # noqa: E402, F401

# --- misc ---
# clusters, WebSocket client (owner: aquests-misc); aquests.lib.jwt and aquests.rcache are imported by name
from .aliases import alias, get_cluster, unalias  # noqa: E402, F401
from .cluster import Cluster  # noqa: E402, F401
from .members import (  # noqa: E402, F401
    DB_MONGODB, DB_PGSQL, DB_POSTGRESQL, DB_REDIS, DB_SQLITE3, PROTO_HTTP, PROTO_HTTPS, PROTO_WS, PROTO_WSS,
)
from .websocket import ws, wss  # noqa: E402, F401
# "@name" servers for the DB stubs go through the cluster (the stubs above take plain servers)
from .cluster_db import wrap_stubs as _wrap_db_stubs  # noqa: E402

postgresql, redis, mongodb, sqlite3 = _wrap_db_stubs(postgresql, redis, mongodb, sqlite3)
pg = postgresql  # noqa: F811
