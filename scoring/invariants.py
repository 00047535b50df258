"""Invariant checks that survive `python -O` (bare asserts would not).

A broken invariant is a programmer error, never bad input: it stops the run before anything
is written or paid.
"""

from __future__ import annotations


class InvariantViolation(RuntimeError):
    pass


def invariant(condition: bool, why: str) -> None:
    if not condition:
        raise InvariantViolation(why)
