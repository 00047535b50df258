"""`epochal demo`: the whole job on the embedded default, as a flat list of stages.

A stage is a small function `stage_*(run, meter) -> str` that does one step of the job through the
other parts' own Python functions (never a subprocess), records what it found on the `DemoRun`,
and returns one line for the summary. `run_stages` runs them in order; the first that raises ends
the demo as a `StageFailed` naming the stage and why, and nothing after it runs. A check that does
not hold (an epoch that does not recompute, a reconciliation difference) is a `DemoCheckFailed`
raised by the stage that made it.

The order is the order of the job (issue 19):
1. simulate a network from the traces (planted farms, spoofers, outages, fleets);
2. replay it into a fresh DuckDB store, close every ready epoch and publish it
   (`DIR/epochal.duckdb.published`);
3. the treasury: validate every published epoch with the great-expectations suite, settle it on
   the in-process Solana runtime (LiteSVM, kept in the treasury's file), and reconcile every
   recipient's on-chain balance with its settled rewards;
4. investigate farming over the published folder (`DIR/investigation/`: suspects.json,
   report.html), scored against the truth;
5. verify every published epoch from the published folder alone, with no store: every file
   against its manifest, every row and manifest recomputed from the published inputs (the same
   recomputation `epoch verify N` runs on a store, so it also proves the close);
6. write `DIR/report.html`; with `--serve`, serve the buyer API and explorer (`serve_explorer`).
`DEMO_STAGES` is the list.

Everything the demo writes lives under its `--out` folder, which it clears of its own previous
outputs first (the store, its published folder, the treasury's files), never of anything else.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from epochal import treasury_app
from epochal.replay import ReplayReport, replay
from epochal.report import ReportData, write_report
from epochal.sim import simulate
from epochal.verify_published import verify_published_epochs


class Meter(Protocol):
    """What a stage may tell about its progress (the command line shows it as a rich bar)."""

    def total(self, n: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, text: str) -> None: ...


class NullMeter:
    def total(self, n: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class DemoCheckFailed(Exception):
    """A check of the demo did not hold (the stage says which, in one sentence)."""


class StageFailed(Exception):
    """Stage `number` (`key`) failed; `reason` is one sentence."""

    def __init__(self, number: int, key: str, reason: str, unexpected: bool = False) -> None:
        super().__init__(f"demo stage {number} ({key}) failed: {reason}")
        self.number, self.key, self.reason, self.unexpected = number, key, reason, unexpected


@dataclass
class DemoRun:
    """The demo's options, the paths it writes, and what each stage found."""

    out_dir: Path
    nodes: int
    hours: int
    seed: int
    traces: Path | None = None
    source: str = "the packaged trace profile"  # what the simulator reads, in words
    # filled by the stages
    sim_summary: dict = field(default_factory=dict)
    replay_report: ReplayReport | None = None
    verified_published: list[int] = field(default_factory=list)  # re-derived from the published folder alone
    investigation: dict | None = None  # for the report: clusters, quality, min_score, suspects_path
    report_path: Path | None = None
    settled: list[int] = field(default_factory=list)
    validations: list[dict] | None = None  # for the report: per epoch, passed and each check
    settlements: list[dict] | None = None  # the treasury's batches: signature, memo, recipients, amount, status
    reconciliation: dict | None = None
    summaries: list[tuple[int, str, str, float]] = field(default_factory=list)  # (n, key, line, seconds)

    @property
    def events_dir(self) -> Path:
        return self.out_dir / "events"

    @property
    def truth_path(self) -> Path:
        return self.events_dir / "truth.json"

    @property
    def db(self) -> Path:
        return self.out_dir / "epochal.duckdb"

    @property
    def published(self) -> Path:
        return self.out_dir / "epochal.duckdb.published"

    @property
    def treasury_file(self) -> Path:
        return self.out_dir / "epochal.duckdb.treasury.duckdb"

    @property
    def treasury(self) -> treasury_app.TreasuryConfig:
        return treasury_app.TreasuryConfig.resolve(self.db, treasury=self.treasury_file, publish=self.published)

    @property
    def closed_epochs(self) -> list[int]:
        return [r.reward_epoch for r in self.replay_report.closed] if self.replay_report else []

    def truth(self) -> dict:
        return json.loads(self.truth_path.read_text())

    def written(self) -> list[tuple[str, Path]]:
        """What the demo wrote, for the summary (only what exists)."""
        paths = [("events and truth", self.events_dir), ("store", self.db), ("published epochs", self.published),
                 ("treasury", self.treasury.treasury), ("investigation", self.out_dir / "investigation"),
                 ("report", self.out_dir / "report.html")]
        return [(what, p) for what, p in paths if p.exists()]


@dataclass(frozen=True)
class Stage:
    key: str
    title: str
    run: Callable[[DemoRun, Meter], str]


def clear_previous_outputs(run: DemoRun) -> None:
    """The demo starts from a clean store every time: remove what an earlier demo in the same
    folder wrote (its store and the files derived from the store's name), nothing else."""
    t = run.treasury.treasury
    for stale in (run.db, run.db.with_name(run.db.name + ".wal"), t, t.with_name(t.name + ".wal"),
                  t.with_name(t.name + ".keypair.json"), t.with_name(t.name + ".lock")):
        stale.unlink(missing_ok=True)
    if run.published.is_dir():
        shutil.rmtree(run.published)  # (the old folder is another store's: publishing would refuse it)
    page = run.out_dir / "report.html"
    if page.is_file():
        page.unlink()


# ---------------------------------------------------------------------------------------------
# the stages, in order
# ---------------------------------------------------------------------------------------------

def stage_simulate(run: DemoRun, meter: Meter) -> str:
    meter.total(1000)
    done = [0]

    def moved(fraction: float) -> None:
        now = int(fraction * 1000)
        meter.advance(now - done[0])
        done[0] = now

    run.events_dir.mkdir(parents=True, exist_ok=True)
    run.sim_summary = simulate(run.nodes, run.hours, run.seed, run.events_dir, data_dir=run.traces, progress=moved)
    planted = run.sim_summary.get("planted_nodes", {})
    plants = ", ".join(f"{n} {kind} nodes" for kind, n in planted.items() if n)
    return (f"simulated {run.nodes:,} nodes over {run.hours} h (seed {run.seed}) from {run.source}: "
            f"{run.sim_summary.get('lines', 0):,} event lines; planted {plants or 'nothing'}")


def stage_replay(run: DemoRun, meter: Meter) -> str:
    meter.total(run.sim_summary.get("lines") or None)
    run.replay_report = replay([run.events_dir], run.db, progress=meter.advance,
                               on_closed=lambda r: meter.note(f"closed epoch {r.reward_epoch}"),
                               publish=run.published)  # under --out, whatever $EPOCHAL_PUBLISH says
    c = run.replay_report.counts
    closed = run.replay_report.closed
    if not closed:
        raise DemoCheckFailed("no reward epoch closed (the simulation is too short for the ping watermark "
                              "to pass an epoch's end)")
    paid = sum(r.epoch_row["allocated_base_units"] for r in closed)
    reasons = ", ".join(f"{k} {v:,}" for k, v in c.by_reason.items()) or "none"
    return (f"replayed {c.inputs:,} inputs = {c.accepted:,} accepted + {c.duplicates:,} exact duplicates + "
            f"{c.rejected:,} rejected ({reasons}); closed {len(closed)} reward epochs "
            f"{closed[0].reward_epoch}..{closed[-1].reward_epoch}, {paid:,} base units allocated")


def stage_verify_published(run: DemoRun, meter: Meter) -> str:
    """Every published epoch re-derived from the published folder alone (no store): the files
    against their manifests, the manifests' hash chain, every row and manifest recomputed from
    the published inputs (`verify_published_epochs`: the folder loaded once)."""
    epochs = run.replay_report.published if run.replay_report else []
    meter.total(len(epochs))
    found = verify_published_epochs(run.published, epochs, progress=meter.advance)
    bad = {e: d for e, d in found.items() if d}
    if bad:
        e, differences = next(iter(bad.items()))
        raise DemoCheckFailed(f"epoch {e} as published does not re-derive from the folder alone: {differences[0]}"
                              + (f" (and {sum(map(len, bad.values())) - 1} more differences)"
                                 if sum(map(len, bad.values())) > 1 else ""))
    run.verified_published = list(epochs)
    return (f"verified all {len(epochs)} published epochs from {run.published} alone (no store): every file "
            "matches its manifest, every row and manifest re-derived from the published inputs")


def _ingest_counts(run: DemoRun) -> tuple[int, int, int, int, int] | None:
    if run.replay_report is None:
        return None
    c = run.replay_report.counts
    return (c.inputs, c.accepted, c.duplicates, c.rejected, c.late)


def stage_treasury(run: DemoRun, meter: Meter) -> str:
    """The treasury on the published epochs, in order: each validated by the great-expectations
    gate and paid on the in-process Solana runtime (`settle_many`), then every recipient's
    on-chain balance and every batch reconciled against the reward table (`reconcile_chain`)."""
    cfg = run.treasury
    epochs = treasury_app.list_epochs(cfg.publish)
    if not epochs:
        raise DemoCheckFailed(f"no epoch is published in {cfg.publish}")
    meter.total(len(epochs))
    run.validations = []
    paid = transfers = batches = 0
    for outcome in treasury_app.settle_many(cfg, epochs, log=lambda line: meter.note(line[:60])):
        v = outcome.validation
        if v is not None:
            run.validations.append({"reward_epoch": outcome.reward_epoch, "passed": v.success,
                                    "checks": [(c.name, c.success, c.detail) for c in v.checks]})
        if outcome.action == "blocked":
            raise DemoCheckFailed(f"epoch {outcome.reward_epoch} did not pass validation: {outcome.reason}")
        r = outcome.report
        paid, transfers, batches = paid + r.total_base_units, transfers + r.recipients, batches + r.batches
        run.settled.append(outcome.reward_epoch)
        meter.advance()
    run.settlements = treasury_app.settlement_rows(cfg)
    confirmed = sum(int(t["amount_base_units"]) for t in run.settlements if t["status"] == "confirmed")
    allocated = sum(r.epoch_row["allocated_base_units"] for r in run.replay_report.closed if r.reward_epoch in epochs)
    if confirmed != allocated:
        raise DemoCheckFailed(f"the confirmed transfers pay {confirmed:,} base units, the epochs allocated {allocated:,}")
    rec = treasury_app.reconcile_chain(cfg, None)
    run.reconciliation = {"ok": not rec.differences, "recipients": rec.recipients, "batches": rec.batches,
                          "transfers": rec.transfers, "differences": list(rec.differences)}
    if rec.differences:
        raise DemoCheckFailed(f"reconciliation found {len(rec.differences)} difference(s): {rec.differences[0]}")
    return (f"validated and settled {len(epochs)} epochs on the in-process Solana runtime: {paid:,} base units "
            f"(= allocated) in {transfers:,} transfers, {batches} transactions; reconciled {rec.recipients:,} "
            f"recipients' on-chain balances and {rec.batches} batches: no difference")


def stage_investigate(run: DemoRun, meter: Meter) -> str:
    """The farming investigation over the published folder (as an analyst runs it: no store, no
    lock), its evidence in DIR/investigation/, scored against the simulator's truth, with the
    reward that leaked to each planted farm before the investigation run at each epoch's end
    first flagged it."""
    # analytics sits beside this package and imports the store; imported here so that the
    # demo's other stages do not pay for networkx and matplotlib
    from analytics.investigate import run as investigate
    from analytics.quality import leak_timeline, score
    from analytics.report import suspects, write_html, write_suspects
    from analytics.source import open_source

    meter.total(None)
    out = run.out_dir / "investigation"
    out.mkdir(parents=True, exist_ok=True)
    src = open_source(None, run.published)
    try:
        inv = investigate(src)
        truth = run.truth() if run.truth_path.exists() else None
        quality = score(inv, truth) if truth else {}
        leak = leak_timeline(src, truth, inv.min_score) if truth else []
        if leak:
            quality["leaked_base_units"] = sum(r["leaked_base_units"] for r in leak)
        js = write_suspects(inv, out)
        write_html(inv, out, quality=quality or None, leak=leak or None)
    finally:
        src.close()
    planted = {n: p["kind"] for p in (truth or {}).get("plants", []) if p["kind"] in ("farm", "spoofer")
               for n in p["node_ids"]}
    doc = suspects(inv)
    clusters = [c | {"planted": next((planted[n] for n in c["node_ids"] if n in planted), None)}
                for c in doc["clusters"] if c["score"] >= inv.min_score]
    run.investigation = {"clusters": clusters, "quality": quality, "min_score": inv.min_score,
                         "suspects_path": str(js), "leak": leak}
    flagged = len(inv.flagged())
    figures = (f"; precision {quality['precision']:.2f}, recall {quality['recall']:.2f} against the planted truth"
               if quality else "")
    return f"investigated farming: {len(clusters)} clusters flagged, {flagged:,} nodes{figures}; evidence in {out}"


def stage_report(run: DemoRun, meter: Meter) -> str:
    meter.total(None)
    data = ReportData(
        ingest=_ingest_counts(run),
        title=f"epochal demo: {run.nodes:,} nodes × {run.hours} h (seed {run.seed})",
        truth=run.truth() if run.truth_path.exists() else None,
        verified_published=list(run.verified_published) if run.verified_published else None,
        stages=list(run.summaries),
        investigation=run.investigation,
        validations=run.validations,
        settlements=run.settlements,
        reconciliation=run.reconciliation,
    )
    run.report_path = write_report(run.published, run.out_dir / "report.html", data)
    return f"report: {run.report_path}"


DEMO_STAGES: tuple[Stage, ...] = (
    Stage("simulate", "simulating the network", stage_simulate),
    Stage("replay", "replaying, closing every ready epoch", stage_replay),
    Stage("treasury", "validating and settling every epoch on Solana", stage_treasury),
    Stage("investigate", "investigating farming", stage_investigate),
    Stage("verify_published", "verifying every epoch from the published folder alone", stage_verify_published),
    Stage("report", "writing the report", stage_report),
)


def serve_explorer(run: DemoRun, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """The last stage with `--serve`: the buyer API and node explorer over the demo's published
    folder and treasury, until interrupted (Ctrl-C). `on_ready(url)` once it accepts connections."""
    # FastAPI and uvicorn load only when serving (as in `epochal serve`: ~0.5 s the other stages need not pay)
    import uvicorn

    from epochal.api.app import ApiConfig, create_app

    app = create_app(ApiConfig(published=run.published, treasury=run.treasury_file))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="on"))
    # uvicorn serves on this (the main) thread, as `epochal serve` does: Ctrl-C is its graceful
    # shutdown (lifespan included), and no server thread is still running when the interpreter
    # exits (a daemon server thread cut short at exit crashed the process now and then). A small
    # watcher thread says when it listens.
    url = f"http://{host}:{port}/"

    def watch() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            on_ready(url)

    watcher = threading.Thread(target=watch, name="epochal-explorer-ready", daemon=True)
    watcher.start()
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn raises again the Ctrl-C it shut down on
        pass
    except SystemExit as exc:  # uvicorn's way of saying it could not bind
        raise OSError(f"the explorer could not start on {host}:{port}") from exc
    finally:
        server.should_exit = True
        watcher.join()
    if not server.started:
        raise OSError(f"the explorer could not start on {host}:{port}")


def run_stages(run: DemoRun, stages: tuple[Stage, ...] | list[Stage] = DEMO_STAGES,
               meter_for: Callable[[int, Stage], Meter] | None = None,
               on_done: Callable[[int, Stage, str, float], None] | None = None) -> DemoRun:
    """Run `stages` in order; raise `StageFailed` at the first one that fails."""
    for number, stage in enumerate(stages, 1):
        meter = meter_for(number, stage) if meter_for else NullMeter()
        t0 = time.perf_counter()
        try:
            line = stage.run(run, meter)
        except DemoCheckFailed as exc:
            raise StageFailed(number, stage.key, str(exc)) from exc
        except Exception as exc:  # any other failure still names its stage, with the error's own words
            raise StageFailed(number, stage.key, f"{type(exc).__name__}: {exc}", unexpected=True) from exc
        seconds = time.perf_counter() - t0
        run.summaries.append((number, stage.key, line, seconds))
        if on_done:
            on_done(number, stage, line, seconds)
    return run
