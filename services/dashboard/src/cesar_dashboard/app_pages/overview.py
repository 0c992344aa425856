"""Page script: see :mod:`cesar_dashboard.views.overview`."""

from cesar_dashboard import ui
from cesar_dashboard.views import overview

ui.auto_refresh(overview.TITLE, overview.render, ui.settings())
