"""Page script: see :mod:`cesar_dashboard.views.jobs`."""

from cesar_dashboard import ui
from cesar_dashboard.views import jobs

ui.auto_refresh(jobs.TITLE, jobs.render, ui.settings())
