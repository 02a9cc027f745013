"""Length-sorted, token-budget batch planning.

A padded batch costs ``longest × count`` tokens of compute. Sorting by length puts
similar lengths together (little padding), and a token budget instead of a fixed
batch size lets many short pairs share one forward pass while a few long ones get
their own, keeping peak memory bounded either way.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Upper bound on pairs per forward pass (FlagReranker's default batch size).
DEFAULT_MAX_BATCH_SIZE = 128


def plan_batches(lengths: Sequence[int], max_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Group item indices into batches whose padded cost stays within ``max_tokens``.

    Longest items come first so an out-of-memory condition shows up on the first
    batch rather than after minutes of work. Every item lands in exactly one batch;
    an item longer than the budget gets a batch of its own (never dropped).
    """
    if max_tokens < 1 or max_batch_size < 1:
        raise ValueError("max_tokens and max_batch_size must be positive")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = max(1, lengths[index])
        if current:
            longest_if_added = max(longest, length)
            if len(current) >= max_batch_size or longest_if_added * (len(current) + 1) > max_tokens:
                batches.append(current)
                current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches
