"""Typo correction cost on a large vocabulary: is a "did you mean" lookup cheap enough for every search?

    python bench/spelling.py [--words 100000] [--lookups 2000]

Builds a ``search.spelling.Speller`` over a synthetic vocabulary (random Latin words of 3-14 letters with
Zipf-like listing counts; real words of the demo catalog mixed in), then times ``correct`` on misspelt
words (one or two edits of vocabulary words) and on unknown words, each looked up once (the per-process
cache is cleared before each lookup, so the numbers are cold lookups). Wall-clock and this thread's CPU time are
both reported: on a shared, loaded machine the wall p99 is mostly time the thread waited for a core.
Prints JSON, then one summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from search.spelling import Speller  # noqa: E402


def _vocabulary(size: int, rng: random.Random) -> list[tuple[str, int]]:
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1.5, 1, 0.8, 0.2, 0.2, 0.1, 0.1]
    words: dict[str, int] = {}
    while len(words) < size:
        length = rng.randint(3, 14)
        word = "".join(rng.choices(letters, weights, k=length))
        words[word] = max(1, int(10_000 / (len(words) + 1)))
    return list(words.items())


def _misspell(word: str, edits: int, rng: random.Random) -> str:
    for _ in range(edits):
        at = rng.randrange(1, len(word))  # the first letter is kept (see search.spelling)
        kind = rng.choice("sdi")
        if kind == "s":
            word = word[:at] + rng.choice(string.ascii_lowercase) + word[at + 1 :]
        elif kind == "d" and len(word) > 4:
            word = word[:at] + word[at + 1 :]
        else:
            word = word[:at] + rng.choice(string.ascii_lowercase) + word[at:]
    return word


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    vocabulary = _vocabulary(args.words, rng)
    started = time.perf_counter()
    speller = Speller(vocabulary)
    build_ms = (time.perf_counter() - started) * 1000
    long_words = [w for w, _ in vocabulary if len(w) >= 4]
    probes = {
        "one_typo": [_misspell(rng.choice(long_words), 1, rng) for _ in range(args.lookups)],
        "two_typos_8plus": [
            _misspell(w, 2, rng) for w in rng.sample([w for w in long_words if len(w) >= 10], args.lookups)
        ],
        "unknown": ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 12))) for _ in range(args.lookups)],
    }
    results: dict[str, dict[str, float]] = {}
    for name, words in probes.items():
        times, cpu, corrected = [], [], 0
        for word in words:
            speller._cache.clear()  # cold: what the first search of a word pays
            mark, cpu_mark = time.perf_counter(), time.thread_time()
            corrected += speller.correct(word) is not None
            times.append((time.perf_counter() - mark) * 1000)
            cpu.append((time.thread_time() - cpu_mark) * 1000)
        times.sort()
        cpu.sort()
        results[name] = {
            "lookups": len(words),
            "corrected_share": round(corrected / len(words), 3),
            "mean_ms": round(statistics.fmean(times), 4),
            "p50_ms": round(times[len(times) // 2], 4),
            "p99_ms": round(times[int(len(times) * 0.99)], 4),
            "max_ms": round(times[-1], 4),
            "cpu_p50_ms": round(cpu[len(cpu) // 2], 4),
            "cpu_p99_ms": round(cpu[int(len(cpu) * 0.99)], 4),
        }
    load = os.getloadavg()[0]
    out = {"vocabulary": args.words, "build_ms": round(build_ms, 1), "load_average_1m": load, "lookups": results}
    print(json.dumps(out, indent=2))
    worst = max(r["p99_ms"] for r in results.values())
    worst_cpu = max(r["cpu_p99_ms"] for r in results.values())
    median = max(r["p50_ms"] for r in results.values())
    print(
        f"spelling: {args.words} words, speller built in {build_ms:.0f} ms; cold lookup p50 <= {median:.2f} ms, "
        f"p99 <= {worst:.2f} ms wall / {worst_cpu:.2f} ms CPU (load average {load:.1f})"
    )


if __name__ == "__main__":
    main()
