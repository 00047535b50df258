"""The buyer-facing HTTP API (contract.md "HTTP API"): read-only JSON over the published folder.

    GET /health                      the index: epochs, nodes, when it was built; the live feed
    GET /nodes                       filters (gpu model key, class, region, min_reputation,
                                     eligible, hw_verdict), sort, cursor pagination, capped pages
    GET /nodes/{node_id}             current score with every component and the ruleset version,
                                     the last N epochs (up slots, streak, reputation, reward, why
                                     not paid), hardware verdict history, slashes with evidence,
                                     and, with a live feed, the open epochs marked provisional
    GET /epochs, /epochs/{n}         emission, pools, allocation, manifest, settlement status
    GET /wallets/{wallet}/rewards    a wallet's rewards, newest first, cursor pagination
    GET /                            the node explorer page (static, no build step, no CDN)

Every route is a GET; nothing here writes. Unknown ids are 404 with a sentence saying what was
not found; bad parameters are 422 (FastAPI's validation, and the same shape for a bad cursor).
Data never reaches SQL as text: the read model is polars frames (filters are column
comparisons), and the one DuckDB query (wallet histories) binds its values as parameters.

"Why not paid", per epoch row: null when the node was paid; else its `ineligible_reason`
(ruleset §5, the first failing condition) when it was ineligible; else `zero_weight` (eligible
with weight 0) or `share_rounded_to_zero` (a positive weight whose floor share was 0, §7).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Optional

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from epochal.api.index import (COMPONENTS, GPU_CLASSES, HW_VERDICTS, MAX_PAGE, SORT_KEYS, ApiIndex, CursorError,
                               Snapshot, decode_cursor, encode_cursor)
from epochal.api.live import LiveFollower
from epochal.api.settlements import Settlements
from scoring.ruleset import RULESET_V1
from scoring.timing import format_us

STATIC = Path(__file__).resolve().parent / "static"
SortParam = Literal[tuple(k for key in SORT_KEYS for k in (key, "-" + key))]  # type: ignore[valid-type]
REP_WEIGHTS = {"rep_availability": RULESET_V1.rep_weight_availability, "rep_jobs": RULESET_V1.rep_weight_jobs,
               "rep_hardware": RULESET_V1.rep_weight_hardware, "rep_tenure": RULESET_V1.rep_weight_tenure}


# ----------------------------------------------------------------------------------------
# response models (the OpenAPI schema)
# ----------------------------------------------------------------------------------------

class Problem(BaseModel):
    detail: Any = Field(description="What was wrong, in a sentence (or FastAPI's list of validation errors).")


class Components(BaseModel):
    """Ruleset §4: R = round(1000 · (0.40·A + 0.30·J + 0.20·H + 0.10·T) · P)."""
    rep_availability: Optional[float] = Field(None, description="A: weighted mean uptime since registration")
    rep_jobs: Optional[float] = Field(None, description="J = (succeeded + 1) / (succeeded + failed_node + 2)")
    rep_hardware: Optional[float] = Field(None, description="H: hw_ratio of the latest verified benchmark, else 0")
    rep_tenure: Optional[float] = Field(None, description="T = min(1, hours since registration / 720)")
    rep_penalty: Optional[float] = Field(None, description="P = 0.5 ^ slashes in the last 720 epochs")


class LiveSnapshot(BaseModel):
    reward_epoch: int
    up_slots: Optional[int] = None
    uptime_ratio: Optional[float] = None
    streak_slots: Optional[int] = None
    hw_verdict: Optional[str] = None
    pings: Optional[int] = None
    last_ping_us: Optional[int] = None
    last_ping_at: Optional[str] = None
    provisional: bool = True


class NodeRow(BaseModel):
    node_id: str
    reward_epoch: int = Field(description="The epoch of this score (the node's most recent published one)")
    ruleset_version: Optional[str] = None
    reputation: Optional[int] = None
    components: Components
    up_slots: int
    uptime_ratio: float
    streak_slots: int
    hw_verdict: str
    eligible: bool
    ineligible_reason: Optional[str] = None
    weight: int
    reward_base_units: int
    gpu_model_key: Optional[str] = None
    gpu_model_claimed: Optional[str] = None
    gpu_count: Optional[int] = None
    gpu_class: Optional[str] = None
    region: Optional[str] = None
    wallet: Optional[str] = None
    live: Optional[LiveSnapshot] = Field(None, description="The open epoch so far (provisional), with a live feed")


class NodePage(BaseModel):
    nodes: list[NodeRow]
    next_cursor: Optional[str] = Field(None, description="Pass as `cursor` for the next page; null on the last")
    matching: int = Field(description="Nodes matching the filters")
    limit: int
    as_of_epoch: Optional[int] = None


class Registry(BaseModel):
    wallet: Optional[str] = None
    gpu_model_claimed: Optional[str] = None
    gpu_model_key: Optional[str] = None
    gpu_class: Optional[str] = None
    gpu_count: Optional[int] = None
    multiplier_milli: Optional[int] = None
    region: Optional[str] = None
    operator_id: Optional[str] = None
    stake_base_units: Optional[int] = None
    registered_at: Optional[str] = None


class CurrentScore(BaseModel):
    reward_epoch: int
    ruleset_version: Optional[str] = None
    reputation: Optional[int] = None
    components: Components
    weights: dict[str, float] = Field(description="The ruleset's weight of each component in R")
    up_slots: int
    uptime_ratio: float
    streak_slots: int
    hw_verdict: str
    hw_ratio: Optional[float] = None
    benchmark_event_id: Optional[str] = None
    jobs_succeeded: Optional[int] = None
    jobs_failed_node: Optional[int] = None
    slash_count: Optional[int] = None
    banned: Optional[bool] = None
    eligible: bool
    ineligible_reason: Optional[str] = None
    weight: int
    reward_base_units: int
    why_not_paid: Optional[str] = None


class EpochScore(BaseModel):
    reward_epoch: int
    up_slots: int
    uptime_ratio: float
    up_slot_map: str = Field(description="60 characters, slot 0 first: 1 = up in that minute")
    streak_slots: int
    reputation: Optional[int] = None
    components: Components
    hw_verdict: str
    eligible: bool
    ineligible_reason: Optional[str] = None
    weight: int
    reward_base_units: int
    pool: Optional[str] = None
    why_not_paid: Optional[str] = None
    ruleset_version: Optional[str] = None


class HwRun(BaseModel):
    from_epoch: int
    to_epoch: int
    hw_verdict: Optional[str] = None
    hw_ratio: Optional[float] = None
    benchmark_event_id: Optional[str] = None


class EvidenceEvent(BaseModel):
    event_id: str
    found: bool = Field(description="False when the event is not in the published inputs")
    event_type: Optional[str] = None
    node_id: Optional[str] = None
    occurred_at: Optional[str] = None
    payload: Any = None


class Slash(BaseModel):
    decision_id: str
    rule: str
    amount_base_units: int
    decided_at: Optional[str] = None
    status: str
    detail: Optional[str] = None
    decided_in_epoch: Optional[int] = None
    finality_epoch: Optional[int] = None
    evidence: list[EvidenceEvent]


class NodeDetail(BaseModel):
    node_id: str
    as_of_epoch: Optional[int] = None
    registry: Optional[Registry] = None
    current: CurrentScore
    epochs: list[EpochScore] = Field(description="The last N published epochs with a score row, oldest first")
    hardware: list[HwRun] = Field(description="Hardware verdict history over every published epoch")
    slashes: list[Slash]
    open_epochs: list[LiveSnapshot] = Field(description="Epochs not yet published, from the live feed (provisional)")


class Settlement(BaseModel):
    status: str = Field(description="unsettled | validated | blocked | settling | settled | unknown")
    reason: Optional[str] = None
    settled_at: Optional[str] = None
    settled_base_units: Optional[int] = None
    batches: Optional[int] = None
    transactions: Optional[list[dict]] = None
    note: Optional[str] = None


class EpochSummary(BaseModel):
    reward_epoch: int
    ruleset_version: Optional[str] = None
    manifest_sha256: Optional[str] = None
    emission_base_units: int
    enterprise_pool: int
    community_pool: int
    allocated_base_units: int
    enterprise_allocated: int
    community_allocated: int
    unallocated_base_units: int
    scored_nodes: int
    eligible_nodes: int
    paid_nodes: int
    settlement: Settlement


class EpochDetail(EpochSummary):
    manifest: dict


class EpochList(BaseModel):
    epochs: list[EpochSummary]
    next_cursor: Optional[str] = None


class WalletReward(BaseModel):
    reward_epoch: int
    node_id: str
    pool: str
    amount_base_units: int


class WalletRewards(BaseModel):
    wallet: str
    total_base_units: int
    epochs_paid: int
    rewards: list[WalletReward]
    next_cursor: Optional[str] = None


class Health(BaseModel):
    status: str
    published_folder: str
    published_epochs: int
    first_epoch: Optional[int] = None
    latest_epoch: Optional[int] = None
    nodes: int
    index_built_at: Optional[float] = None
    index_build_s: Optional[float] = None
    refresh_error: Optional[str] = None
    live: Optional[dict] = None


# ----------------------------------------------------------------------------------------
# the app
# ----------------------------------------------------------------------------------------

@dataclass
class ApiConfig:
    published: Path
    treasury: Path | None = None
    bootstrap: str | None = None
    window_epochs: int = 48
    refresh_s: float = 1.0


class ApiState:
    def __init__(self, cfg: ApiConfig) -> None:
        self.cfg = cfg
        self.index = ApiIndex(cfg.published, cfg.window_epochs, cfg.refresh_s)
        self.settlements = Settlements(cfg.treasury)
        self.live = LiveFollower(cfg.bootstrap) if cfg.bootstrap else None
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            with contextlib.suppress(Exception):  # an unreadable folder now: the refresher retries
                self.index.refresh()
            self.index.start()
            if self.live is not None:
                self.live.start()

    def stop(self) -> None:
        self.index.stop()
        if self.live is not None:
            self.live.stop()

    def snapshot(self) -> Snapshot:
        self.index.maybe_refresh()
        snap = self.index.snap
        if self.live is not None:
            self.live.set_published_through(snap.last_epoch)
        return snap


def _iso(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _why_not_paid(r: dict) -> str | None:
    if r.get("reward_base_units", 0) > 0:
        return None
    if not r.get("eligible"):
        return r.get("ineligible_reason") or "ineligible"
    return "zero_weight" if not r.get("weight") else "share_rounded_to_zero"


def _components(r: dict) -> dict:
    return {c: r.get(c) for c in COMPONENTS}


def _slot_map(bits) -> str:
    """The slot bitmap as text, slot 0 first (bit i = slot i)."""
    n = RULESET_V1.slots_per_epoch
    return format(int(bits or 0) & ((1 << n) - 1), f"0{n}b")[::-1]


def _live(d: dict | None) -> dict | None:
    if d is None:
        return None
    return _pick(LiveSnapshot, {**d, "last_ping_at": format_us(d["last_ping_us"]) if d.get("last_ping_us") is not None
                                else None})


def _pick(model: type[BaseModel], d: dict) -> dict:
    """Exactly the model's fields of `d` (the rows carry more columns than a response shows)."""
    return {k: d.get(k) for k in model.model_fields}


def _json(obj) -> Response:
    """The hot routes' answers: shaped by `_pick` to their response model (the schema test holds
    them to it), serialised by orjson in one call instead of validated field by field again."""
    return Response(orjson.dumps(obj), media_type="application/json")


def create_app(cfg: ApiConfig) -> FastAPI:
    state = ApiState(cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="epochal", version="1", lifespan=lifespan,
                  description="Scores, rewards and slashes of a decentralised GPU network, from its "
                              "published epochs. Read-only.")
    app.state.api = state

    # A coroutine, so that FastAPI does not send this attribute lookup to its thread pool (a hop
    # per request); the routes stay plain functions, which it runs on the pool, side by side.
    async def snap() -> Snapshot:
        state.start()  # a TestClient without a `with` block never ran the lifespan
        return state.snapshot()

    @app.exception_handler(CursorError)
    async def _bad_cursor(request: Request, exc: CursorError):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    errors = {404: {"model": Problem}, 422: {"model": Problem}}

    @app.get("/health", response_model=Health, tags=["meta"])
    def health(s: Snapshot = Depends(snap)) -> Response:
        """Whether the API is up, how much of the published folder it has indexed, and the live feed."""
        return _json({"status": "ok", "published_folder": str(cfg.published), "published_epochs": len(s.epochs),
                      "first_epoch": s.epochs[0] if s.epochs else None, "latest_epoch": s.last_epoch,
                      "nodes": s.node_count, "index_built_at": s.built_at or None,
                      "index_build_s": round(s.build_s, 3) if s.build_s else None,
                      "refresh_error": state.index.last_error,
                      "live": state.live.status() if state.live is not None else None})

    def node_row(r: dict) -> dict:
        return _pick(NodeRow, {**r, "components": _components(r), "gpu_class": r.get("pool"),
                               "live": _live(state.live.latest_open(r["node_id"])) if state.live is not None
                               else None})

    @app.get("/nodes", response_model=NodePage, responses=errors, tags=["nodes"])
    def list_nodes(
        gpu: Optional[str] = Query(None, max_length=64, description="GPU model key, e.g. H100 or RTX-4090"),
        gpu_class: Optional[Literal[GPU_CLASSES]] = Query(None, alias="class",  # type: ignore[valid-type]
                                                          description="enterprise or community"),
        region: Optional[str] = Query(None, max_length=64),
        min_reputation: Optional[int] = Query(None, ge=0, le=1000),
        eligible: Optional[bool] = Query(None, description="Eligible in its latest published epoch"),
        hw_verdict: Optional[Literal[HW_VERDICTS]] = Query(None),  # type: ignore[valid-type]
        sort: SortParam = Query("-reputation", description="A key, `-key` for descending; ties by node_id"),
        limit: int = Query(50, ge=1, le=MAX_PAGE),
        cursor: Optional[str] = Query(None, max_length=512),
        s: Snapshot = Depends(snap),
    ) -> Response:
        """Nodes with their latest published score and every reputation component."""
        rows, nxt, total = s.page_nodes(gpu=gpu, gpu_class=gpu_class, region=region, min_reputation=min_reputation,
                                        eligible=eligible, hw_verdict=hw_verdict, sort=sort, limit=limit,
                                        cursor=cursor)
        return _json({"nodes": [node_row(r) for r in rows], "next_cursor": nxt, "matching": total, "limit": limit,
                      "as_of_epoch": s.last_epoch})

    @app.get("/nodes/{node_id}", response_model=NodeDetail, responses=errors, tags=["nodes"])
    def get_node(node_id: str = PathParam(..., min_length=1, max_length=256),
                 epochs: int = Query(24, ge=1, le=cfg.window_epochs, description="How many of the latest epochs"),
                 s: Snapshot = Depends(snap)) -> Response:
        """One node: why its score is what it is."""
        found = s.node(node_id, epochs)
        if found is None:
            live = state.live.open_epochs(node_id) if state.live is not None else []
            raise HTTPException(404, f"node {node_id!r} has no score in the published epochs"
                                + (" (it has provisional live data only)" if live else ""))
        c = found["current"]
        current = _pick(CurrentScore, {**c, "components": _components(c), "weights": REP_WEIGHTS,
                                       "why_not_paid": _why_not_paid(c)})
        registry = None
        if c.get("wallet") is not None or c.get("region") is not None:
            registry = _pick(Registry, {**c, "gpu_class": c.get("pool"),
                                        "registered_at": format_us(c["registered_at_us"])
                                        if c.get("registered_at_us") is not None else None})
        rows = [_pick(EpochScore, {**r, "components": _components(r), "up_slot_map": _slot_map(r.get("slot_bitmap")),
                                   "pool": r.get("reward_pool"), "why_not_paid": _why_not_paid(r)})
                for r in found["epochs"]]
        runs = found["hw_runs"]
        hardware = []
        for i, r in enumerate(runs):
            to = runs[i + 1]["reward_epoch"] - 1 if i + 1 < len(runs) else c["reward_epoch"]
            hardware.append({"from_epoch": r["reward_epoch"], "to_epoch": to, "hw_verdict": r.get("hw_verdict"),
                             "hw_ratio": r.get("hw_ratio"), "benchmark_event_id": r.get("benchmark_event_id")})
        slashes = []
        for d in found["slashes"]:
            ev = []
            for e in d.get("evidence_events") or []:
                ev.append({"event_id": e["event_id"], "found": not e.get("missing", False),
                           "event_type": e.get("event_type"), "node_id": e.get("node_id"),
                           "occurred_at": (format_us(e["occurred_at_us"]) if e.get("occurred_at_us") is not None
                                           else e.get("occurred_at_raw")),
                           "payload": _payload(e.get("payload"))})
            slashes.append(_pick(Slash, {**d, "decided_at": _iso(d.get("decided_at")), "evidence": ev}))
        live = [_live(x) for x in state.live.open_epochs(node_id)] if state.live is not None else []
        return _json({"node_id": node_id, "as_of_epoch": s.last_epoch, "registry": registry, "current": current,
                      "epochs": rows, "hardware": hardware, "slashes": slashes, "open_epochs": live})

    def epoch_summary(s: Snapshot, n: int, detail: bool = False) -> dict:
        return {**s.figures[n], "settlement": state.settlements.of(n, detail=detail)}

    @app.get("/epochs", response_model=EpochList, responses=errors, tags=["epochs"])
    def list_epochs(limit: int = Query(50, ge=1, le=MAX_PAGE),
                    cursor: Optional[str] = Query(None, max_length=512),
                    s: Snapshot = Depends(snap)) -> dict:
        """Published epochs, newest first."""
        eps = s.epochs[::-1]
        if cursor is not None:
            parts = decode_cursor(cursor, "epochs")
            if len(parts) != 1 or not isinstance(parts[0], int) or isinstance(parts[0], bool):
                raise CursorError("the cursor is not one this API handed out for this listing")
            eps = [n for n in eps if n < parts[0]]
        page = eps[:limit]
        nxt = encode_cursor("epochs", page[-1]) if len(eps) > limit else None
        return {"epochs": [epoch_summary(s, n) for n in page], "next_cursor": nxt}

    @app.get("/epochs/{reward_epoch}", response_model=EpochDetail, responses=errors, tags=["epochs"])
    def get_epoch(reward_epoch: int = PathParam(..., ge=0, le=2**62), s: Snapshot = Depends(snap)) -> dict:
        """One published epoch: emission, pools, allocation, its manifest, and whether it is settled."""
        if reward_epoch not in s.figures:
            raise HTTPException(404, f"epoch {reward_epoch} is not published"
                                + (f" (published: {s.epochs[0]}..{s.epochs[-1]})" if s.epochs else " (none yet)"))
        return {**epoch_summary(s, reward_epoch, detail=True), "manifest": s.manifests[reward_epoch]}

    @app.get("/wallets/{wallet}/rewards", response_model=WalletRewards, responses=errors, tags=["wallets"])
    def wallet_rewards(wallet: str = PathParam(..., min_length=1, max_length=128),
                       limit: int = Query(100, ge=1, le=MAX_PAGE),
                       cursor: Optional[str] = Query(None, max_length=512),
                       s: Snapshot = Depends(snap)) -> dict:
        """Every reward paid to a wallet in the published epochs, newest first."""
        after = None
        if cursor is not None:
            parts = decode_cursor(cursor, "wallet:" + wallet)
            if (len(parts) != 2 or not isinstance(parts[0], int) or isinstance(parts[0], bool)
                    or not isinstance(parts[1], str)):
                raise CursorError("the cursor is not one this API handed out for this listing")
            after = (parts[0], parts[1])
        got = state.index.wallet_rewards(wallet, limit + 1, after)
        if got is None:
            raise HTTPException(404, f"wallet {wallet!r} was paid nothing in the published epochs")
        rows, total, n_epochs = got
        page = rows[:limit]
        nxt = encode_cursor("wallet:" + wallet, page[-1][0], page[-1][1]) if len(rows) > limit else None
        return {"wallet": wallet, "total_base_units": total, "epochs_paid": n_epochs,
                "rewards": [{"reward_epoch": r[0], "node_id": r[1], "pool": r[2], "amount_base_units": r[3]}
                            for r in page], "next_cursor": nxt}

    @app.get("/", include_in_schema=False)
    def explorer() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _payload(p):
    """An evidence event's payload as JSON when it is JSON text (the archive keeps it canonical)."""
    if isinstance(p, str):
        try:
            return orjson.loads(p)
        except orjson.JSONDecodeError:
            return p
    return p
