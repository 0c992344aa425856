"""Page script: see :mod:`cesar_dashboard.views.llm`."""

from cesar_dashboard import ui
from cesar_dashboard.views import llm

ui.auto_refresh(llm.TITLE, llm.render, ui.settings())
