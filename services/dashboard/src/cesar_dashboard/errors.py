"""The dashboard's exceptions, one tree rooted in :class:`DashboardError`.

Driver errors (asyncpg, redis, httpx) are translated where they are caught, so pages only ever
see these, and turn them into an ``st.error`` naming the part that is unreachable. API calls
never raise: they return an outcome with a readable message (see :mod:`cesar_dashboard.api`).
"""

from __future__ import annotations

from cesar_core.errors import CesarError

__all__ = ["DashboardError", "DatabaseUnreachable", "SchemaMissing"]


class DashboardError(CesarError):
    """Root of everything the dashboard raises on purpose."""


class DatabaseUnreachable(DashboardError):
    """The dashboard cannot read from the database (connect failed, query failed, timeout)."""


class SchemaMissing(DashboardError):
    """The database answers but a table or view is missing: it has not been migrated."""
