"""The dashboard's exceptions, one tree rooted in :class:`DashboardError`.

Driver errors (asyncpg, redis, httpx) are translated where they are caught, so pages only ever
see these, and turn them into an ``st.error`` naming the part that is unreachable.
"""

from __future__ import annotations

from cesar_core.errors import CesarError

__all__ = ["ApiUnavailable", "DashboardError", "DatabaseUnreachable"]


class DashboardError(CesarError):
    """Root of everything the dashboard raises on purpose."""


class DatabaseUnreachable(DashboardError):
    """The dashboard cannot read from the database (connect failed, query failed, timeout)."""


class ApiUnavailable(DashboardError):
    """The API could not be reached or did not answer in time."""
