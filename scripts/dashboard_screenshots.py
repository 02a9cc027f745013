"""Screenshots of the experiments dashboard of a running server (headless Debian Chromium via Playwright).

python scripts/dashboard_screenshots.py http://127.0.0.1:8000 /tmp/shots EMAIL PASSWORD [KEY ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def main(base: str, out: Path, email: str, password: str, keys: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{base}/dashboard/login")
        page.screenshot(path=str(out / "login.png"))
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/")
        page.screenshot(path=str(out / "list.png"), full_page=True)
        for key in keys:
            page.goto(f"{base}/dashboard/experiments/{key}")
            page.screenshot(path=str(out / f"{key}.png"), full_page=True)
            page.goto(f"{base}/dashboard/experiments/{key}/edit")
            page.screenshot(path=str(out / f"{key}-edit.png"), full_page=True)
        page.goto(f"{base}/dashboard/experiments/new")
        page.screenshot(path=str(out / "new.png"), full_page=True)
        browser.close()
    for path in sorted(out.glob("*.png")):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
