"""Screenshots of a running shop in several UI languages (headless Debian Chromium via Playwright).

    python scripts/screenshots.py http://127.0.0.1:8000 /tmp/shots

Fonts: install fonts-noto-cjk and fonts-noto-core for Chinese/Japanese/Arabic glyphs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import sync_playwright

PAGES = [
    ("en-search", "/search?q={q}&lang=en", "wireless noise cancelling headphones"),
    ("zh-search", "/search?q={q}&lang=zh", "无线降噪耳机"),
    ("ar-search", "/search?q={q}&lang=ar", "سماعات لاسلكية"),
    ("ja-search", "/search?q={q}&lang=ja", "ランニングシューズ"),
    ("es-home", "/?lang=es", ""),
    ("ru-product", "/search?q={q}&lang=ru", "кофемолка"),
]
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(base: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        for name, path, query in PAGES:
            page.goto(base + path.format(q=quote(query)))
            page.wait_for_load_state("networkidle")
            if name == "ru-product":
                page.click("#results a.card-link >> nth=0")
                page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / f"{name}.png"), full_page=False)
            print(out / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), Path(sys.argv[2]))
