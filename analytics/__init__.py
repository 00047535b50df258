"""The farming investigation (issue 18): read-only analytics over the archive.

`source` cuts the archive (store or published folder) at an epoch; `features` reads per-node
facts columnar; `signals` builds the pair signals; `investigate` makes the graph, the clusters
and their scores; `report` writes suspects.json and report.html; `quality` scores a run against
a simulation's truth. Imports point down: this package reads `store.db` and `scoring`, and
only `epochal`'s command line and demo import it.
"""
