"""The buyer-facing HTTP API and node explorer page (`epochal serve`, contract.md "HTTP API").

- `index.py`: the API's own read model, built from the published folder (never the store) and
  refreshed when a new manifest appears;
- `live.py`: the live snapshots of open epochs followed on `epochal.scores` (optional);
- `settlements.py`: the treasury's settlement status, read from its own file when it can be;
- `app.py`: the FastAPI app (read-only JSON, OpenAPI at /openapi.json, the explorer at /);
- `static/`: the explorer page, plain HTML and JavaScript with no build step and no CDN.
"""
