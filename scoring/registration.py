"""Registration (ruleset §10 "Registration"): the first `node.registered` of a node stands.

"First" is by (occurred_at, event_id) (§10 "Time resolution": ties by event_id in byte order).
The ingest rejects any other registration of the node (`already_registered`), a registration
archived by an earlier run standing whatever the times of later arrivals; the close reads the
first one (at most one per node is archived, but the rule is applied where it is read, too).

`get_first_registration` is the reference; `first_registration_sql` its SQL twin (the ingest's
and the close's), held to it by tests/property/test_rule_twins.py.
"""

from __future__ import annotations

from typing import Iterable


def get_first_registration(registrations: Iterable[tuple]) -> tuple | None:
    """The first of one node's registrations, each starting with (occurred_at_us, event_id)."""
    first = None
    for r in registrations:
        if first is None or tuple(r[:2]) < tuple(first[:2]):
            first = r
    return first


def first_registration_sql(registrations: str) -> str:
    """`get_first_registration` per node_id of the relation `registrations` (node_id, event_id,
    occurred_at_us): its event_id and registered_at_us."""
    return (f"SELECT node_id, arg_min(event_id, (occurred_at_us, event_id)) AS event_id,"
            f" min(occurred_at_us) AS registered_at_us FROM {registrations} GROUP BY node_id")
