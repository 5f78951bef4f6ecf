"""The web UI (`logship ui`): the delivery session, a robot's day, supply hours and the funnel
as server-rendered pages and JSON, read from the warehouse through :mod:`loader.analytics`.

Modules, in the order a request meets them: :mod:`~loader.ui.server` (binds, runs),
:mod:`~loader.ui.app` (wiring only; its typed state in :mod:`~loader.ui.state`),
:mod:`~loader.ui.middleware` (token check, problem answers, metrics) with
:mod:`~loader.ui.security` (headers, tokens), :mod:`~loader.ui.routes`,
:mod:`~loader.ui.inputs`, :mod:`~loader.ui.visits` (the read-only warehouse visit, writers
first), :mod:`~loader.ui.neighbours` (a robot day's previous/next days), then
:mod:`~loader.ui.pages` with :mod:`~loader.ui.svg`, :mod:`~loader.ui.html` and
:mod:`~loader.ui.fmt`, or :mod:`~loader.ui.downloads` (streamed JSON/CSV);
:mod:`~loader.ui.problems` holds every non-200 answer, :mod:`~loader.ui.metrics` every
metric, :mod:`~loader.ui.assets` the CSS/JS.
"""

from loader.ui.app import build_app
from loader.ui.config import UiSettings
from loader.ui.server import run_ui, serve_ui

__all__ = ["UiSettings", "build_app", "run_ui", "serve_ui"]
