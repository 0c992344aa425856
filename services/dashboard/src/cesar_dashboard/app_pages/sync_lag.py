"""Page script: see :mod:`cesar_dashboard.views.sync_lag`."""

from cesar_dashboard import ui
from cesar_dashboard.views import sync_lag

ui.auto_refresh(sync_lag.TITLE, sync_lag.render, ui.settings())
