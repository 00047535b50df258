"""LiteSVM served over Solana's JSON-RPC, for the tests of the RPC transport (payouts/chain.py).

    with RpcShim() as shim:
        chain = RpcChain(shim.url)     # the real `solana` client, over HTTP, to a real LiteSVM

The shim answers the methods `RpcChain` calls, each by the LiteSVM transport's own method, so the
treasury's RPC code path runs end to end against the real SPL Token program and only the
transport differs. Its responses are built with solders' own RPC response types (the ones the
client parses). `sendTransaction` runs a preflight simulation, as a validator does, unless
`skipPreflight`. Test hooks: `drop_batches(n)` accepts the next n transfer batches (transactions
with a memo) without executing them (a dropped packet) and lets their blockhash expire;
`expire_blockhash()` lets time pass.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from solders.pubkey import Pubkey
from solders.rpc.responses import (GetMultipleAccountsResp, GetSignatureStatusesResp, RpcResponseContext)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus, TransactionStatus

from spl.memo.constants import MEMO_PROGRAM_ID

from payouts.chain import LiteSVMChain, TransactionRejected


class RpcShim:
    def __init__(self, chain: LiteSVMChain | None = None):
        self.chain = chain or LiteSVMChain(None)
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self._drop = 0
        self._sent: dict[str, bytes] = {}  # an in-memory chain keeps no bytes: the shim does, for getTransaction
        shim = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reqs = body if isinstance(body, list) else [body]
                with shim.lock:
                    answers = [shim.answer(r) for r in reqs]
                raw = json.dumps(answers if isinstance(body, list) else answers[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RpcShim":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- test hooks
    def drop_batches(self, n: int) -> None:
        with self.lock:
            self._drop = n

    def expire_blockhash(self) -> None:
        with self.lock:
            self.chain.expire_blockhash()

    # -- JSON-RPC
    def answer(self, req: dict) -> dict:
        method, params, rid = req["method"], req.get("params") or [], req.get("id")
        self.calls.append(method)
        try:
            result = getattr(self, "m_" + method)(*params)
        except TransactionRejected as exc:
            err = {"code": -32002, "message": f"Transaction simulation failed: {exc}",
                   "data": {"err": str(exc), "logs": [], "accounts": None, "unitsConsumed": 0, "returnData": None}}
            return {"jsonrpc": "2.0", "error": err, "id": rid}
        if isinstance(result, str) and result.startswith('{"jsonrpc"'):
            out = json.loads(result)  # a solders response: its result, under this request's id
            return {"jsonrpc": "2.0", "result": out["result"], "id": rid}
        return {"jsonrpc": "2.0", "result": result, "id": rid}

    def _context(self) -> dict:
        return {"slot": self.chain.slot}

    def m_getLatestBlockhash(self, config=None):
        blockhash, height = self.chain.latest_blockhash()
        return {"context": self._context(), "value": {"blockhash": str(blockhash), "lastValidBlockHeight": height}}

    def m_getBlockHeight(self, config=None):
        return self.chain.height

    def m_getSlot(self, config=None):
        self.chain.let_slot_pass()  # a cluster's slots go by on their own; LiteSVM's when asked
        return self.chain.slot

    def m_getMinimumBalanceForRentExemption(self, size, config=None):
        return self.chain.rent_exempt_minimum(size)

    def m_getMultipleAccounts(self, keys, config=None):
        accounts = self.chain.accounts([Pubkey.from_string(k) for k in keys])
        return GetMultipleAccountsResp(accounts, RpcResponseContext(self.chain.slot)).to_json()

    def m_getBalance(self, key, config=None):
        return {"context": self._context(), "value": self.chain.lamports(Pubkey.from_string(key))}

    def m_requestAirdrop(self, key, lamports, config=None):
        res = self.chain.svm.airdrop(Pubkey.from_string(key), lamports)
        return str(res.signature())

    def m_sendTransaction(self, encoded, config=None):
        config = config or {}
        tx = VersionedTransaction.from_bytes(base64.b64decode(encoded))
        if self._drop > 0 and MEMO_PROGRAM_ID in tx.message.account_keys:
            # accepted, never executed; time passes until its blockhash expired
            self._drop -= 1
            self.chain.expire_blockhash()
            return str(tx.signatures[0])
        if not config.get("skipPreflight"):
            if self.chain.statuses([tx.signatures[0]])[0] is not None:
                raise TransactionRejected("AlreadyProcessed")
            sim = self.chain.svm.simulate_transaction(tx)
            if hasattr(sim, "err"):
                raise TransactionRejected(str(sim.err()))
        self.chain.send(tx)
        self._sent[str(tx.signatures[0])] = bytes(tx)
        return str(tx.signatures[0])

    def m_getTransaction(self, sig, config=None):
        raw = self.chain.transaction_bytes(Signature.from_string(sig))
        if raw is None:
            got = self.chain.svm.get_transaction(Signature.from_string(sig))
            raw = self._sent.get(sig) if got is not None else None
        if raw is None:
            return None
        return {"slot": self.chain.slot, "transaction": [base64.b64encode(raw).decode(), "base64"], "meta": None,
                "version": 0, "blockTime": None}

    def m_getSignatureStatuses(self, sigs, config=None):
        out = []
        for s in sigs:
            got = self.chain.svm.get_transaction(Signature.from_string(s))
            if got is None:
                out.append(None)
                continue
            err = got.err() if hasattr(got, "err") else None
            out.append(TransactionStatus(self.chain.slot, None, None, err, TransactionConfirmationStatus.Finalized))
        return GetSignatureStatusesResp(out, RpcResponseContext(self.chain.slot)).to_json()
