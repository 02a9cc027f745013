"""Two starts of ``shoprank serve --demo`` on a fresh instance directory: when each answers, and its first search.

    python bench/demo_restart.py [--port 8724] [--demo-users 50] [--instance /tmp/demo-restart] [--history DIR]

The first start migrates, imports and embeds the demo catalog (minutes on 2 cores); the second finds it all in
place. For each: seconds from the process start until ``/`` answers, then the first ``/api/search`` (ms and its
rerank status), with the load average at that moment (a shared machine makes these numbers its own). Prints JSON,
then one summary line; ``--history`` also writes the JSON to ``DIR/demo-restart-<UTC time>.json``, with
``/proc/loadavg`` before and after the run. The server is stopped even when the run is interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:  # not Linux
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _start(port: int, users: int, instance: Path, log: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO), SHOPRANK_INSTANCE_DIR=str(instance))
    command = [sys.executable, "-m", "shopctl", "serve", "--demo", "--port", str(port), "--demo-users", str(users)]
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        return _measure(process, port, started, log)
    finally:
        _stop(process)


def _measure(process: subprocess.Popen[bytes], port: int, started: float, log: Path) -> dict[str, Any]:
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()  # nosec B310 - local server
            break
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the server exited; see {log}") from None
            time.sleep(0.2)
    answered = time.monotonic() - started
    searched = time.monotonic()
    url = f"http://127.0.0.1:{port}/api/search?q=wireless+headphones&limit=5"
    body = json.loads(urllib.request.urlopen(url, timeout=60).read())  # nosec B310 - local server
    first_ms = (time.monotonic() - searched) * 1000
    return {
        "answers_after_s": round(answered, 1),
        "first_search_ms": round(first_ms),
        "first_search_rerank_status": body.get("rerank_status"),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8724)
    parser.add_argument("--demo-users", type=int, default=50)
    parser.add_argument("--instance", type=Path, default=None)
    parser.add_argument("--history", type=Path, default=None, help="also write the JSON into this folder")
    args = parser.parse_args()
    instance = args.instance or Path(tempfile.mkdtemp(prefix="demo-restart-"))
    results: dict[str, Any] = {
        "instance": str(instance),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.executable,
        "repo": str(REPO),
        "loadavg_before": _loadavg(),
    }
    for start in ("first", "second"):
        results[start] = _start(args.port, args.demo_users, instance, instance / f"serve-{start}.log")
    results["loadavg_after"] = _loadavg()
    print(json.dumps(results, indent=2))
    if args.history is not None:
        args.history.mkdir(parents=True, exist_ok=True)
        stamp = results["started_utc"].replace(":", "").replace("-", "")
        (args.history / f"demo-restart-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    first, second = results["first"], results["second"]
    print(
        f"demo start: first answers after {first['answers_after_s']} s, second after {second['answers_after_s']} s "
        f"(first search {second['first_search_ms']} ms, {second['first_search_rerank_status']}); "
        f"load average {second['load_average'][0]}"
    )


if __name__ == "__main__":
    main()
