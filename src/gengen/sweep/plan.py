"""A study's plan: how many trials it runs and which are queued, a window of ``QUEUE_AHEAD`` at a time
(grid points of a seeded subset under grid sampling, empty slots the sampler fills otherwise)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from gengen.sweep.settings import PLANNED_ATTR, QUEUE_AHEAD, Settings
from gengen.sweep.space import SearchSpace


def _extend_plan(st, space: SearchSpace, settings: Settings, add: int) -> None:
    """Plan ``add`` more trials and queue the first of them (under the set-up lock). Only
    :data:`QUEUE_AHEAD` trials wait in the queue at a time: workers queue more as they take them
    (:func:`_top_up`), so a plan of 10^9 trials or a grid of 10^10 points costs nothing up front."""
    st.set_user_attr(PLANNED_ATTR, int(st.user_attrs.get(PLANNED_ATTR, 0)) + add)
    _top_up(st, space, settings)


def _top_up(st, space: SearchSpace, settings: Settings) -> int:
    """Queue planned trials until :data:`QUEUE_AHEAD` are waiting (call under the set-up lock, so two
    workers never queue the same one); returns how many were queued. Grid sampling queues grid points
    of the plan (:func:`_grid_plan`) never queued before, TPE / random sampling empty slots the sampler
    fills when a worker takes one."""
    from optuna.trial import TrialState

    planned = int(st.user_attrs.get(PLANNED_ATTR, 0))
    have = st.get_trials(deepcopy=False)
    room = QUEUE_AHEAD - sum(t.state == TrialState.WAITING for t in have)
    key = "grid_index" if settings.sampler == "grid" else "slot"
    used = {t.user_attrs[key] for t in have if key in t.user_attrs}  # a re-queued copy keeps its original's
    room = min(room, planned - len(used))
    if room <= 0:
        return 0
    if settings.sampler == "grid":
        fresh = (i for i in _grid_plan(space.grid_size(), planned, settings.seed) if i not in used)
        for i in itertools.islice(fresh, room):
            st.enqueue_trial(space.point(i), user_attrs={"grid_index": i})
    else:
        for i in range(len(used), len(used) + room):
            st.enqueue_trial({}, user_attrs={"slot": i})
    return room


def _remaining(st, settings: Settings) -> bool:
    """Whether some planned trial has not been queued yet."""
    key = "grid_index" if settings.sampler == "grid" else "slot"
    used = {t.user_attrs[key] for t in st.get_trials(deepcopy=False) if key in t.user_attrs}
    return len(used) < int(st.user_attrs.get(PLANNED_ATTR, 0))


PERMUTE_IN_MEMORY = 1_000_000  # grids up to this size draw their subset with numpy (as studies always have)


def _grid_plan(size: int, planned: int, seed: int) -> Iterator[int]:
    """The grid indices a plan of ``planned`` trials runs, in order: the whole grid in order when the
    plan covers it; otherwise a seeded random subset, in grid order, the same every time (so an
    extended plan contains the earlier one). Grids over :data:`PERMUTE_IN_MEMORY` points take the
    subset from a seeded permutation computed one index at a time (:func:`_permuted`), in its order:
    nothing the size of the grid or of the plan is ever built."""
    if planned >= size:
        yield from range(size)
    elif size <= PERMUTE_IN_MEMORY:
        yield from sorted(int(i) for i in np.random.default_rng(seed).permutation(size)[:planned])
    else:
        for i in range(planned):
            yield _permuted(i, size, seed)


def _permuted(i: int, n: int, seed: int) -> int:
    """The ``i``-th element of a seeded pseudo-random permutation of ``range(n)`` in O(1) memory: a
    four-round Feistel network on the smallest even number of bits covering ``n``, walking the cycle
    until it lands below ``n`` (a bijection on range(n); about two steps on average)."""
    import hashlib

    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    x = i
    while True:
        left, right = x >> half, x & mask
        for r in range(4):
            h = hashlib.blake2b(f"{seed}:{r}:{right}".encode(), digest_size=64).digest()
            left, right = right, left ^ (int.from_bytes(h, "big") & mask)
        x = (left << half) | right
        if x < n:
            return x
