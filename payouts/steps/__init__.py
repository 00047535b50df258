"""The steps of an epoch close, one module per section of the ruleset, in its order:

    uptime       §2  up slots, uptime ratio, the streak carried forward
    hardware     §3  the latest benchmark's verdict, fresh or stale
    slashing     §8  this close's decisions and statuses; P's count and the ban per node
    reputation   §4  A, J, H, T, P and R
    eligibility  §5  the first failing reason, or none
    emission     §6  the epoch's emission and its two pools
    allocation   §7  weights, the largest-remainder shares, the reward rows
    ledger       §8, §9  double entry: emission, pools, rewards, unallocated, stake
    manifest     §9  the pinned hash of the reward rows

Each `process_*(state)` reads what the earlier steps set on the `EpochState` and sets its
own, by calling the rules of scoring/ (or their named vectorised twins); no step restates a rule.
"""
