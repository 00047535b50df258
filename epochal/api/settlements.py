"""Settlement status of published epochs, read from the treasury's own file when it can be.

The treasury keeps the contract's `settlements` table `(reward_epoch, batch)` (and, where its
version has it, `treasury_epochs`: validated | blocked | settling | settled) in
`<db>.treasury.duckdb`. DuckDB lets no other process open a file while one writes it, so the API
opens it read-only at most every `ttl_s`, keeps the last answer it got, and says how old that is
when the file is busy or absent. Nothing here ever writes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb

CONFIRMED = "confirmed"


class Settlements:
    def __init__(self, path: Path | None, ttl_s: float = 5.0) -> None:
        self.path = Path(path) if path else None
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._batches: dict[int, list[dict]] = {}
        self._epochs: dict[int, dict] = {}
        self._ok_at: float | None = None  # wall clock of the last successful read
        self.note: str | None = "no treasury file configured" if path is None else None

    def _read(self) -> None:
        if self.path is None:
            return
        if not self.path.exists():
            self._batches, self._epochs, self.note = {}, {}, f"no treasury file at {self.path} (nothing settled yet)"
            return
        try:
            con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:  # held by the treasury (a lock), or not a DuckDB file
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.note = f"the treasury file is busy or unreadable ({first}); showing what was read last"
            return
        try:
            tables = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
            batches: dict[int, list[dict]] = {}
            if "settlements" in tables:
                cur = con.execute("SELECT reward_epoch, batch, signature, status, recipients, amount_base_units"
                                  " FROM settlements ORDER BY reward_epoch, batch")
                cols = [d[0] for d in cur.description]
                for row in cur.fetchall():
                    d = dict(zip(cols, row))
                    batches.setdefault(int(d["reward_epoch"]), []).append(d)
            epochs: dict[int, dict] = {}
            if "treasury_epochs" in tables:
                cur = con.execute("SELECT * FROM treasury_epochs")
                cols = [d[0] for d in cur.description]
                for row in cur.fetchall():
                    d = dict(zip(cols, row))
                    epochs[int(d["reward_epoch"])] = {k: d.get(k) for k in ("status", "reason", "settled_at")}
            self._batches, self._epochs = batches, epochs
            self._ok_at = time.time()
            self.note = None
        except duckdb.Error as exc:
            self.note = f"the treasury file could not be read ({str(exc).splitlines()[0]})"
        finally:
            con.close()

    def _fresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl_s:
                self._read_at = time.monotonic()
                self._read()

    def of(self, reward_epoch: int, detail: bool = False) -> dict:
        """{"status": unsettled | validated | blocked | settling | settled | unknown, ...}."""
        self._fresh()
        batches = self._batches.get(reward_epoch, [])
        ep = self._epochs.get(reward_epoch)
        if ep is not None and ep.get("status"):
            status = str(ep["status"])
        elif batches:
            status = "settled" if all(b["status"] == CONFIRMED for b in batches) else "settling"
        elif self._ok_at is None and self.path is not None and self.path.exists():
            status = "unknown"  # never read: busy from the start
        else:
            status = "unsettled"
        out: dict = {"status": status}
        if ep is not None and ep.get("reason"):
            out["reason"] = ep["reason"]
        if ep is not None and ep.get("settled_at") is not None:
            out["settled_at"] = str(ep["settled_at"])
        if batches:
            out["settled_base_units"] = sum(int(b["amount_base_units"]) for b in batches if b["status"] == CONFIRMED)
            out["batches"] = len(batches)
            if detail:
                out["transactions"] = [{k: b[k] for k in ("batch", "signature", "status", "recipients",
                                                          "amount_base_units")} for b in batches]
        if self.note:
            out["note"] = self.note
        return out
