"""Properties of the live Table's merge (streams.live.merge_node_state): at-least-once delivery
and any order leave the joins (slot bits, latest ping, carried streak, verdict, settled
epochs) as the updates' union says; re-deliveries in publication order leave the whole state,
ping counts included, as one delivery does; the snapshot of a closed epoch still kept has the
streak the close computes (§2); and a flush's snapshots, computed for all nodes at once, are
each the scalar snapshot."""

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.ruleset import RULESET_V1
from scoring.uptime import STREAK_START, StreakState, compute_streak_state, compute_up_slots
from streams.live import NodeUpdate, compute_live_snapshot, compute_live_snapshots, merge_node_state

G = RULESET_V1.genesis_us
H = RULESET_V1.reward_epoch_us
SLOT = RULESET_V1.slot_us


@st.composite
def publications(draw):
    """One node's updates as a closer publishes them: contiguous arrival ranges, closed and
    drop (the previous publication's closed) never going down, rows of epochs after drop."""
    n = draw(st.integers(1, 7))
    out, lo, closed, drop = [], 0, -1, -1
    for _ in range(n):
        hi = lo + draw(st.integers(0, 50))
        epochs = sorted(draw(st.sets(st.integers(drop + 1, drop + 3), max_size=3)))
        rows = tuple((e, draw(st.integers(0, (1 << 60) - 1)), draw(st.integers(1, 100)),
                      G + e * H + draw(st.integers(0, 59)) * SLOT) for e in epochs)
        carried = (drop, draw(st.integers(0, 10_000)), draw(st.booleans())) if drop >= 0 else None
        hw = None
        if draw(st.booleans()):
            hw = (G + draw(st.integers(0, 5)) * H, draw(st.sampled_from(["a", "b", "c"])), hi,
                  draw(st.sampled_from(["verified", "mismatch", "impossible", "unknown_model"])))
        out.append(NodeUpdate(lo, hi, False, drop, closed, rows, carried, hw))
        lo = hi + 1
        drop = closed
        closed = closed + draw(st.integers(0, 2))
    return out


def apply(updates):
    s = None
    for u in updates:
        s = merge_node_state(s, u)
    return s


def joins(s):
    return ({k: (v[0], v[2]) for k, v in s["e"].items()}, s["c"], s["h"], s["x"], s["k"])


@settings(max_examples=300)
@given(publications(), st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=8))
def test_re_deliveries_in_publication_order_change_nothing(ups, redeliver):
    ref = apply(ups)
    seq = []
    for i, u in enumerate(ups):
        seq.append(u)
        seq.extend(ups[j] for after, j in redeliver if after == i and j <= i)
    assert apply(seq) == ref


@settings(max_examples=300)
@given(publications(), st.randoms(use_true_random=False), st.lists(st.integers(0, 6), max_size=6))
def test_any_order_with_duplicates_gives_the_same_joins(ups, rnd, dups):
    ref = apply(ups)
    shuffled = ups + [ups[i] for i in dups if i < len(ups)]
    rnd.shuffle(shuffled)
    assert joins(apply(shuffled)) == joins(ref)
    # and the joins are the union of the updates: bits OR-ed over every row of a kept epoch
    for k, (bits, last) in joins(ref)[0].items():
        rows = [r for u in ups for r in u.epochs if r[0] == int(k)]
        want = 0
        for r in rows:
            want |= r[1]
        assert bits == want and last == max(r[3] for r in rows)


@settings(max_examples=200)
@given(st.integers(0, 10_000), st.booleans(), st.integers(0, (1 << 60) - 1), st.integers(0, (1 << 60) - 1),
       st.integers(0, 59))
def test_a_closed_epochs_snapshot_has_the_streak_of_the_close(streak, prev_up, b5, b6, last_slot):
    """Carried from the end of epoch 4, epochs 5 and 6 closed but not yet settled: epoch 6's
    snapshot runs all 60 slots (as the close does), whatever the slot of its latest ping."""
    u = NodeUpdate(0, 10, False, 4, 6, ((5, b5, 1, G + 5 * H), (6, b6, 1, G + 6 * H + last_slot * SLOT)),
                   carried=(4, streak, prev_up))
    s = merge_node_state(None, u)
    want = compute_streak_state(compute_streak_state(StreakState(streak, prev_up), b5), b6)
    snap = compute_live_snapshot("n", s, 6)
    assert snap["streak_slots"] == want.streak_slots
    assert snap["up_slots"] == compute_up_slots(b6)
    # while epoch 6 is open, the streak runs to the slot of the latest ping
    s_open = merge_node_state(None, u._replace(closed=5))
    st6 = compute_streak_state(compute_streak_state(StreakState(streak, prev_up), b5), b6, slots=last_slot + 1)
    assert compute_live_snapshot("n", s_open, 6)["streak_slots"] == st6.streak_slots
    # nothing carried (no epoch closed yet): the start state (§10)
    s0 = merge_node_state(None, u._replace(drop=-1, closed=-1, carried=None))
    st0 = compute_streak_state(compute_streak_state(STREAK_START, b5), b6, slots=last_slot + 1)
    assert compute_live_snapshot("n", s0, 6)["streak_slots"] == st0.streak_slots


@settings(max_examples=200)
@given(st.lists(publications(), min_size=1, max_size=6))
def test_a_flush_computes_each_snapshot_as_the_scalar_rule_does(nodes):
    items = [(f"n{i}", apply(ups)) for i, ups in enumerate(nodes)]
    want = [compute_live_snapshot(node, state, int(k)) for node, state in items
            for k in sorted(state["e"], key=int)]
    got = compute_live_snapshots(items).to_dicts()
    key = lambda d: (d["node_id"], d["reward_epoch"])  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
