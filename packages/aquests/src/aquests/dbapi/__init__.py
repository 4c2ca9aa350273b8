"""Database connectors of aquests: PostgreSQL, Redis, MongoDB and SQLite3 on asyncio.

The leading ``*`` of the DB_* constants marks an alias type as a database cluster (inventory AQ-22).
Connector modules import their driver lazily, so ``import aquests`` works without the extras.
"""

DB_PGSQL = "*postgresql"
DB_POSTGRESQL = DB_PGSQL
DB_SQLITE3 = "*sqlite3"
DB_REDIS = "*redis"
DB_MONGODB = "*mongodb"

DB_TYPES = (DB_PGSQL, DB_SQLITE3, DB_REDIS, DB_MONGODB)

__all__ = ["DB_PGSQL", "DB_POSTGRESQL", "DB_SQLITE3", "DB_REDIS", "DB_MONGODB", "DB_TYPES"]
