"""Two starts of ``shoprank serve --demo`` on a fresh instance directory: when each answers, and its first search.

    python bench/demo_restart.py [--port 8724] [--demo-users 50] [--instance /tmp/demo-restart]

The first start migrates, imports and embeds the demo catalog (minutes on 2 cores); the second finds it all in
place. For each: seconds from the process start until ``/`` answers, then the first ``/api/search`` (ms and its
rerank status), with the load average at that moment (a shared machine makes these numbers its own). Prints JSON,
then one summary line.
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


def _start(port: int, users: int, instance: Path, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=str(REPO), SHOPRANK_INSTANCE_DIR=str(instance))
    command = [sys.executable, "-m", "shopctl", "serve", "--demo", "--port", str(port), "--demo-users", str(users)]
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
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
    return process, {
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
    args = parser.parse_args()
    instance = args.instance or Path(tempfile.mkdtemp(prefix="demo-restart-"))
    results: dict[str, Any] = {"instance": str(instance)}
    for start in ("first", "second"):
        process, results[start] = _start(args.port, args.demo_users, instance, instance / f"serve-{start}.log")
        process.terminate()
        process.wait(30)
    print(json.dumps(results, indent=2))
    first, second = results["first"], results["second"]
    print(
        f"demo start: first answers after {first['answers_after_s']} s, second after {second['answers_after_s']} s "
        f"(first search {second['first_search_ms']} ms, {second['first_search_rerank_status']}); "
        f"load average {second['load_average'][0]}"
    )


if __name__ == "__main__":
    main()
