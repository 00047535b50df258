"""Jobs (ruleset §4 `J`, §10 "Jobs"): the standing `job.completed` of a job and the counts `J` reads.

A job is identified by `job_id`; of its `job.completed` events the first by (occurred_at,
event_id) stands (a later one is archived but changes neither `J` nor any decision); the job's
node is that event's envelope `node_id`. `J` counts, per node, the standing completions with
occurred_at < end(e): `s` with status `succeeded`, `f` with status `failed_node` (other statuses
do not count).

`get_standing_job` and `compute_job_counts` are the references; `standing_job_sql` and
`job_counts_sql` their SQL twins (the close's), held to them by tests/property/test_rule_twins.py.
"""

from __future__ import annotations

from typing import Iterable

JOB_SUCCEEDED = "succeeded"
JOB_FAILED_NODE = "failed_node"


def get_standing_job(completions: Iterable[tuple], epoch_end_us: int | None = None) -> tuple | None:
    """The standing completion of one job among `completions` (each starting with
    (occurred_at_us, event_id)) with occurred_at < `epoch_end_us` (all when None)."""
    first = None
    for c in completions:
        if (epoch_end_us is None or c[0] < epoch_end_us) and (first is None or tuple(c[:2]) < tuple(first[:2])):
            first = c
    return first


def standing_job_sql(completions: str, epoch_end_us: str | None = None) -> str:
    """`get_standing_job` per job_id of the relation `completions` (job_id, event_id,
    occurred_at_us): the standing event_id."""
    where = f"WHERE occurred_at_us < {epoch_end_us}" if epoch_end_us is not None else ""
    return (f"SELECT job_id, arg_min(event_id, (occurred_at_us, event_id)) AS event_id"
            f" FROM {completions} {where} GROUP BY job_id")


def compute_job_counts(statuses: Iterable[str]) -> tuple[int, int]:
    """(s, f) of one node's standing completions."""
    s = f = 0
    for status in statuses:
        s += status == JOB_SUCCEEDED
        f += status == JOB_FAILED_NODE
    return s, f


def job_counts_sql(status: str = "status") -> str:
    """`compute_job_counts` as the two DuckDB aggregates (jobs_succeeded, jobs_failed_node) of a group."""
    return (f"count(*) FILTER ({status} = '{JOB_SUCCEEDED}') AS jobs_succeeded,"
            f" count(*) FILTER ({status} = '{JOB_FAILED_NODE}') AS jobs_failed_node")
