"""GrowthBook's deterministic hashing, bit for bit, so a unit lands in the same bucket here and in any GrowthBook SDK.

Reference: ``hashFnv32a`` and ``hash`` in GrowthBook's JavaScript SDK (packages/sdk-js/src/util.ts), checked
against the SDK test vectors in ``tests/data/growthbook_cases.json``.
"""

from __future__ import annotations

from typing import Literal

FNV32_OFFSET_BASIS = 0x811C9DC5
FNV32_PRIME = 0x01000193
_UINT32 = 0xFFFFFFFF

HashVersion = Literal[1, 2]


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the string's UTF-16 code units, as the JavaScript reference SDK hashes.

    GrowthBook XORs whole code units (not UTF-8 bytes) into the state. For ASCII ids, which is what cookies and
    API user ids are, every SDK agrees; for non-ASCII ids the SDKs drift apart (Python uses code points, C# UTF-8
    bytes), and we pick the JavaScript reference because the published test vectors come from it.
    """
    state = FNV32_OFFSET_BASIS
    encoded = text.encode("utf-16-le", "surrogatepass")
    for index in range(0, len(encoded), 2):
        state ^= encoded[index] | (encoded[index + 1] << 8)
        state = (state * FNV32_PRIME) & _UINT32
    return state


def gb_hash(seed: str, value: str, version: int = 2) -> float | None:
    """GrowthBook's bucket hash in [0, 1); ``None`` for an unknown version, as the SDKs return.

    - version 2 (current): ``fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000``. Hashing twice decorrelates
      experiments whose seeds share a prefix, and 10,000 buckets give 0.01 % traffic granularity.
    - version 1 (legacy, still used by namespaces): ``fnv1a32(value + seed) % 1000 / 1000``.
    """
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None
