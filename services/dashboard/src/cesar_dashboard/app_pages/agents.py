"""Page script: see :mod:`cesar_dashboard.views.agents`."""

from cesar_dashboard import ui
from cesar_dashboard.views import agents

ui.auto_refresh(agents.TITLE, agents.render, ui.settings())
