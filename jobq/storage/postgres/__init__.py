"""The PostgreSQL backend: :class:`PostgresStorage`, jobs shared by every process
on every host (see :mod:`jobq.storage.postgres.storage`).

Needs the ``jobq[postgres]`` extra (psycopg 3 and psycopg_pool); importing this
package without them raises ImportError saying so.
"""

from .storage import PostgresStorage as PostgresStorage

__all__ = ["PostgresStorage"]
