"""`epochal streams ...`: the live Kafka path (broker, publish, worker, status)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from epochal.cli_common import DbOption, PublishOption, UserError, out
from store.db import StoreBusy, check_store_path, connect, resolve_db_path
from store.published import check_root, published_root
from store.sources import check_readable, expand_paths
from streams.broker import (BrokerError, ensure_topics, env_bootstrap, is_loopback, run_broker_foreground,
                            split_bootstrap, wait_for_broker)
from streams.publish import publish as run_publish
from streams.status import format_status, pending_segments, read_status
from streams.worker import WorkerConfig, default_segments_dir, run_worker

streams_app = typer.Typer(no_args_is_help=True, help="The live path on Kafka: broker, publish, worker, status.")

BootstrapOption = typer.Option(None, "--bootstrap",
                               help="Kafka bootstrap HOST:PORT (default: $EPOCHAL_KAFKA, else 127.0.0.1:9092).")
MAX_PARTITIONS = 10_000  # a limit on what a typo can ask a broker to create
SegmentsOption = typer.Option(None, "--segments",
                              help="Segment folder shared by the workers of a group (default: <db>.segments).")


def _bootstrap(value: Optional[str]) -> str:

    b = value or env_bootstrap()
    try:
        split_bootstrap(b)
    except BrokerError as exc:
        raise UserError(str(exc)) from exc
    return b


@streams_app.command("broker")
def broker(port: int = typer.Option(9092, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
           partitions: int = typer.Option(4, "--partitions", min=1, max=MAX_PARTITIONS,
                                          help="Partitions of each contract topic."),
           host: str = typer.Option("127.0.0.1", "--host", help="A loopback address to listen on.")) -> None:
    """Start the local development broker (Tansu, memory only) and create the contract's topics."""
    if not is_loopback(host):
        raise UserError(f"the development broker listens on loopback addresses only, not {host}")
    if partitions < 1:
        raise UserError("--partitions must be at least 1")
    try:
        run_broker_foreground(port, partitions, host, on_ready=lambda b: out.print(
            f"broker ready at {b} (memory only: a restart loses everything); topics created; Ctrl-C stops it"))
    except BrokerError as exc:
        raise UserError(str(exc)) from exc


@streams_app.command("publish")
def publish(paths: List[Path] = typer.Argument(..., help="Event files (.jsonl) or folders of them."),
            bootstrap: Optional[str] = BootstrapOption,
            time_order: bool = typer.Option(False, "--time-order/--file-order",
                                            help="Merge all files by occurred_at, as a live network sends them."),
            partitions: int = typer.Option(4, "--partitions", min=1, max=MAX_PARTITIONS,
                                           help="Partitions of topics that must be created.")) -> None:
    """Publish event files to the contract's topics, keyed by node_id (kafka-python, acks=all)."""
    files = expand_paths(paths)  # (a SourceError is the user's mistake, said in one sentence)
    if not files:
        raise UserError("no .jsonl event files in the given folders")
    check_readable(files)
    b = _bootstrap(bootstrap)
    try:
        wait_for_broker(b, 15.0)
        ensure_topics(b, partitions)
    except BrokerError as exc:
        raise UserError(str(exc)) from exc
    rep = run_publish(files, b, time_order=time_order)
    out.print(f"published {rep.messages:,} messages from {len(files)} file(s) to {b} in {rep.seconds:.1f} s: "
              + ", ".join(f"{t} {n:,}" for t, n in sorted(rep.by_topic.items())))


@streams_app.command("worker")
def worker(bootstrap: Optional[str] = BootstrapOption, db: Optional[Path] = DbOption,
           segments: Optional[Path] = SegmentsOption,
           group: str = typer.Option("epochal", "--group", help="Consumer group id."),
           batch: int = typer.Option(4000, "--batch", min=1, max=1_000_000, help="Most messages in one micro-batch."),
           within: float = typer.Option(0.5, "--within", max=3600.0,
                                        help="Longest wait, in seconds, to fill a micro-batch."),
           live_every: Optional[float] = typer.Option(
               None, "--live-every", help="Seconds between live node-state updates and live snapshots"
               " (default $EPOCHAL_STREAMS_LIVE_EVERY_S or 10)."),
           worker_id: Optional[str] = typer.Option(None, "--worker-id", help="Name in logs and status files."),
           publish: Optional[Path] = PublishOption,
           status_every: float = typer.Option(10.0, "--status-every",
                                              help="Seconds between status lines (and status file updates).")) -> None:
    """Run the faust worker: archive, close epochs, publish scores, slashes and rejections."""
    path = resolve_db_path(db)
    try:  # a path that is no store is said now, not found by the closer later
        check_store_path(path)
        if path.exists():
            connect(path, read_only=True).close()  # another program's DuckDB file is refused here
    except StoreBusy:
        pass  # another worker holds it: this one writes segments for it
    check_root(published_root(path, publish))  # a published folder that cannot be one is said now too
    if batch < 1:
        raise UserError("--batch must be at least 1")
    if not within > 0:
        raise UserError("--within must be more than 0 seconds")
    if live_every is not None and not live_every > 0:
        raise UserError("--live-every must be more than 0 seconds")
    b = _bootstrap(bootstrap)
    try:
        wait_for_broker(b, 15.0)
        ensure_topics(b)
    except BrokerError as exc:
        raise UserError(str(exc)) from exc
    cfg = WorkerConfig(bootstrap=b, db=path, seg_dir=segments or default_segments_dir(path), group=group,
                       batch_max=batch, within_s=within, status_every_s=max(0.5, status_every), publish=publish)
    if live_every is not None:
        cfg.live_every_s = live_every
    if worker_id:
        cfg.worker_id = worker_id
    raise typer.Exit(run_worker(cfg))


@streams_app.command("status")
def status(db: Optional[Path] = DbOption, segments: Optional[Path] = SegmentsOption) -> None:
    """Consumer lag, rates and rejections as the workers last reported them."""
    seg_dir = segments or default_segments_dir(resolve_db_path(db))
    statuses = read_status(seg_dir)
    if not statuses:
        raise UserError(f"no worker has reported into {seg_dir} (start one with `epochal streams worker`)")
    for line in format_status(statuses, pending_segments(seg_dir), read_status(seg_dir, "live")):
        out.print(line, soft_wrap=True)
