"""The analyses the data exists for — the delivery session, supply hours, the funnel, the
deliveries of a day, a robot's day — implemented once and used by the CLI (`logship session`,
`supply-hours`, `funnel`, through loader/reports.py) and the web UI (loader/ui/).

Every function takes a :class:`Reader` (a query function, the dialect, the schema, the
settings) and returns JSON-able dicts and lists; times are `ingest.event.iso_utc` text. Each
query reads only what it shows — `occurred_at` bounds as parameters (the Redshift sort key),
see :mod:`loader.analytics.base` — except a robot id's look-up (a delivery's is a probe of
`delivery_spans`). Values are always parameters.

Modules: `base` (settings, Reader, days), `families` (lanes, errors, outcomes), `session`,
`deliveries`, `supply`, `funnel`, and `views` (the same analyses as SQL views for BI tools,
created by the loader).
"""

from loader.analytics.base import (
    FUNNEL_STAGES,
    MAX_RANGE_DAYS,
    USABLE_STATES,
    AnalyticsConfig,
    Reader,
    parse_day,
)
from loader.analytics.deliveries import deliveries_of_day, find, latest_day
from loader.analytics.families import LANES, OUTCOMES, is_error, lane
from loader.analytics.funnel import funnel, funnel_stages, shape_funnel
from loader.analytics.session import (
    annotate,
    delivery,
    session,
    session_bi_params,
    session_bi_sql,
    summarize,
)
from loader.analytics.supply import (
    downtime_intervals,
    robot_day,
    shape_supply,
    state_intervals,
    supply_hours,
    supply_totals,
)
from loader.analytics.views import create_views, funnel_view_sql, supply_view_sql

__all__ = [
    "FUNNEL_STAGES",
    "LANES",
    "MAX_RANGE_DAYS",
    "OUTCOMES",
    "USABLE_STATES",
    "AnalyticsConfig",
    "Reader",
    "annotate",
    "create_views",
    "deliveries_of_day",
    "delivery",
    "downtime_intervals",
    "find",
    "funnel",
    "funnel_stages",
    "funnel_view_sql",
    "is_error",
    "lane",
    "latest_day",
    "parse_day",
    "robot_day",
    "session",
    "session_bi_params",
    "session_bi_sql",
    "shape_funnel",
    "shape_supply",
    "state_intervals",
    "summarize",
    "supply_hours",
    "supply_totals",
    "supply_view_sql",
]
