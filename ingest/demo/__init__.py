"""`logship demo`: a simulated day of a small delivery-robot fleet, sent through the HTTP API.

A newcomer runs ``logship dev`` and then this, and a minute later has a warehouse with a day of
deliveries to explore: ``logship session <id>`` (the hint printed at the end names a delivery with
a robot swap), ``logship supply-hours --date <day>`` (usable hours per robot, downtime by reason,
most of it ``lid_error``) and ``logship funnel --date <day>``.

The day is built from the event registry's vocabulary, exactly as the services would log it, in
the order the data goes:

* :mod:`~ingest.demo.fleet`: the simulation — robots' shifts, deliveries, lid errors, a robot
  swap, failures and cancellations, as a list of events;
* :mod:`~ingest.demo.noise`: the ordinary log lines around them (~``noise_ratio`` of the records:
  access logs, debug lines, a few unregistered events) that the sink discards;
* :mod:`~ingest.demo.day`: both as the records Vector's http sink would send, in time order;
* :mod:`~ingest.demo.figures`: what a day holds, read back from its records;
* :mod:`~ingest.demo.sender`: the batches POSTed like Vector does, retried on 429/503;
* :mod:`~ingest.demo.command`: the command line.

Everything is deterministic for a seed: the same content every day (only the date changes, so
delivery ids are stable and the README can name one), and event ids derived from the seed and the
day — sending the same day twice is deduplicated by the loader.
"""

from ingest.demo.day import generate
from ingest.demo.figures import describe
from ingest.demo.fleet import SWAP_DELIVERY_ID, swap_delivery_id
from ingest.demo.sender import DemoError, send

__all__ = ["SWAP_DELIVERY_ID", "DemoError", "describe", "generate", "send", "swap_delivery_id"]
