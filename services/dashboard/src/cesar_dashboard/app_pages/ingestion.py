"""Page script: see :mod:`cesar_dashboard.views.ingestion`."""

from cesar_dashboard import ui
from cesar_dashboard.views import ingestion

ui.auto_refresh(ingestion.TITLE, ingestion.render, ui.settings())
