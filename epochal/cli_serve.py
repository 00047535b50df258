"""`epochal serve`: the buyer-facing HTTP API and node explorer (contract.md "HTTP API").

It reads the published folder (`--published DIR`, else `$EPOCHAL_PUBLISH`, else `<db>.published`),
never the store, so it serves while a stream worker or the treasury holds the store; settlement
status comes from the treasury's file (`<db>.treasury.duckdb`) when it can be read. With
`--bootstrap HOST:PORT` (or `$EPOCHAL_KAFKA`) it also follows the live snapshots on
`epochal.scores` and shows each node's open epoch, marked provisional. Binds to 127.0.0.1 unless
told otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from epochal.cli_common import DbOption, UserError, check_listen, err, out
from store.db import resolve_db_path
from store.published import published_root


def serve(db: Optional[Path] = DbOption,
          published: Optional[Path] = typer.Option(None, "--published", "--publish",
                                                   help="The published folder (default: $EPOCHAL_PUBLISH, else <db>.published)."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: loopback only)."),
          port: int = typer.Option(8000, "--port", help="Port to listen on."),
          bootstrap: Optional[str] = typer.Option(None, "--bootstrap", envvar="EPOCHAL_KAFKA",
                                                  help="Kafka HOST:PORT: follow live snapshots (default: $EPOCHAL_KAFKA)."),
          treasury: Optional[Path] = typer.Option(None, "--treasury",
                                                  help="The treasury's file (default: <db>.treasury.duckdb)."),
          window: int = typer.Option(48, "--window", help="Epochs per node kept in memory for GET /nodes/{id}."),
          refresh_s: float = typer.Option(1.0, "--refresh", help="Seconds between listings of the published folder.")) -> None:
    """Serve the buyer-facing HTTP API and the node explorer over the published folder."""
    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, not {port}")
    if window < 1:
        raise UserError("--window must be at least 1")
    if refresh_s <= 0:
        raise UserError("--refresh must be a positive number of seconds")
    if bootstrap is not None and (":" not in bootstrap or not bootstrap.rsplit(":", 1)[1].isdigit()):
        raise UserError(f"--bootstrap must be HOST:PORT, not {bootstrap!r}")
    root = published_root(db, published)
    if published is not None and not root.is_dir():
        raise UserError(f"no published folder at {root}")
    treasury_path = treasury or Path(str(resolve_db_path(db)) + ".treasury.duckdb")
    check_listen(host, port)

    # FastAPI and uvicorn load only when serving (they cost ~0.5 s at every other command's start)
    import uvicorn

    from epochal.api.app import ApiConfig, create_app

    app = create_app(ApiConfig(published=root, treasury=treasury_path, bootstrap=bootstrap,
                               window_epochs=window, refresh_s=refresh_s))
    state = app.state.api
    state.start()
    snap = state.index.snap
    if not root.is_dir():
        err.print(f"note: no published folder at {root} yet; epochs appear as they are published")
    span = f"epochs {snap.epochs[0]}..{snap.epochs[-1]}" if snap.epochs else "no epochs yet"
    nodes = 0 if snap.latest is None else snap.latest.height
    out.print(f"indexed {root}: {span}, {nodes:,} nodes ({snap.build_s:.1f} s)")
    out.print(f"serving http://{host}:{port}/ (explorer), API at /nodes, /epochs, /wallets/{{wallet}}/rewards, "
              f"OpenAPI at /openapi.json" + (f"; live snapshots from {bootstrap}" if bootstrap else ""))
    config = uvicorn.Config(app, host=host, port=port, log_level=os.environ.get("EPOCHAL_API_LOG", "warning"),
                            access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run()
    finally:
        state.stop()
