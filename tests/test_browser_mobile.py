"""The shop and the dashboard on a phone, in headless Chromium, in every UI language (Arabic right to left).

At 360 and 390 px: no page scrolls sideways; on a results page the filters are behind a "Filters" button, the
first product card starts within the first screen after that button, and sort and the result count share a line;
the button opens the filter sheet. The dashboard's tables scroll inside their cards and its navigation fits.
One browser, one page per width, many navigations. A separate test fails when Chinese, Japanese or Arabic text
renders as empty boxes (fonts missing: ``scripts/install-browser.sh`` installs them).

Screenshots go to ``$SHOPRANK_SCREENSHOTS`` when set (to look at), else to the test's tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.test_browser import browser, live_shop  # noqa: F401  (pytest fixtures)
from webapp.i18n import UI_LANGUAGES

WIDTHS = (360, 390)
HEIGHT = 780
#: What overflows the viewport sideways, if anything (the page's own width and the elements that stick out).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  document.querySelectorAll('body *').forEach(el => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || el.closest('.suggestions, .lang-menu ul')) return;
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== 'visible') return;  // scrolls (or clips) inside its own box
    }
    if (box.right > width + 1 || box.left < -1) out.push(el.tagName.toLowerCase() + '.' + el.className + ' ' +
      Math.round(box.left) + '..' + Math.round(box.right));
  });
  return {scroll: document.documentElement.scrollWidth, width: width, out: out.slice(0, 5)};
}"""
LAYOUT = """() => {
  const box = s => { const el = document.querySelector(s); if (!el) return null;
    const b = el.getBoundingClientRect(); return {top: b.top + scrollY, bottom: b.bottom + scrollY, h: b.height}; };
  const facets = document.querySelector('aside.facets');
  return {button: box('[data-open-filters]'), card: box('#results article.card'), showing: box('.toolbar .showing'),
          sort: box('#sort'), facetsShown: !!facets && getComputedStyle(facets).display !== 'none',
          screen: innerHeight};
}"""
#: Draws ``text`` and as many characters no font has (U+10FFFD, private use) on a canvas in the page's font: the
#: two images are the same when the text's glyphs are missing too (both all tofu boxes).
SAME_AS_TOFU = """(text) => {
  const font = '32px ' + getComputedStyle(document.documentElement).fontFamily;
  const draw = s => { const c = document.createElement('canvas'); c.width = 400; c.height = 60;
    const g = c.getContext('2d'); g.font = font; g.fillStyle = '#000'; g.fillText(s, 4, 44);
    return Array.from(g.getImageData(0, 0, 400, 60).data); };
  const tofu = String.fromCodePoint(0x10FFFD).repeat(Array.from(text).length);
  const a = draw(text), b = draw(tofu);
  return a.every((v, i) => v === b[i]);
}"""


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SHOPRANK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _no_overflow(page, where: str) -> None:
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= found["width"] and not found["out"], (where, found)


def test_shop_on_a_phone_in_every_language(browser, live_shop, tmp_path):  # noqa: F811
    base, _services = live_shop
    shots = _shots(tmp_path)
    for width in WIDTHS:
        page = browser.new_page(viewport={"width": width, "height": HEIGHT})
        for language in UI_LANGUAGES:
            for path in (f"/?lang={language}", f"/deals?lang={language}", f"/help?lang={language}",
                         f"/c/headphones-audio?lang={language}", f"/product/AUD-HP-0001?lang={language}"):  # fmt: skip
                page.goto(base + path)
                _no_overflow(page, (width, path))
            page.goto(f"{base}/search?q=headphones&brand=Sony&lang={language}")
            page.wait_for_selector("#results article.card")
            _no_overflow(page, (width, language, "search"))
            layout = page.evaluate(LAYOUT)
            where = (width, language, layout)
            assert not layout["facetsShown"], where  # behind the button
            assert layout["button"]["bottom"] <= layout["card"]["top"], where  # the button comes first
            assert layout["card"]["top"] < layout["screen"], where  # and the first product is on the first screen
            assert abs(layout["showing"]["top"] - layout["sort"]["top"]) < layout["sort"]["h"], where  # one line
            assert layout["showing"]["h"] < 2 * layout["sort"]["h"], where  # "1–24 of 25" on one line
            assert page.locator("#applied-filters .chip.applied").count() >= 1  # the brand filter, as a chip
            if width == 390 and language in ("en", "fr", "de", "zh", "ja", "ar"):
                page.screenshot(path=str(shots / f"mobile-search-{language}-{width}.png"))
            page.click("[data-open-filters]")
            sheet = page.locator("aside.facets")
            assert sheet.is_visible() and page.locator("[data-open-filters]").get_attribute("aria-expanded") == "true"
            box = sheet.bounding_box()
            assert box["x"] >= -1 and box["x"] + box["width"] <= width + 1
            if width == 390 and language in ("en", "ar"):
                page.screenshot(path=str(shots / f"mobile-filters-{language}-{width}.png"))
            page.click("aside.facets [data-close-filters]")
            assert not sheet.is_visible()
        page.close()


def test_shop_banner_and_header_links_are_real(browser, live_shop):  # noqa: F811
    base, _services = live_shop
    page = browser.new_page(viewport={"width": 390, "height": HEIGHT})
    for language, amount in (("en", "$50.00"), ("de", "50,00 $"), ("fr", "50,00 $"), ("ja", "$50.00")):
        page.goto(f"{base}/?lang={language}")
        assert amount in page.locator(".topbar").inner_text().replace("\u00a0", " ").replace("\u202f", " ")
    page.goto(f"{base}/?lang=en")
    for selector, path in ((".subnav a.deals", "/deals"), (".site-footer a[href^='/help']", "/help")):
        page.click(selector)
        page.wait_for_url(f"**{path}**")
        assert page.locator("main h1").count() == 1
        page.go_back()
    page.close()


def test_cjk_and_arabic_text_renders_glyphs_not_boxes(browser, live_shop, tmp_path):  # noqa: F811
    base, _services = live_shop
    page = browser.new_page(viewport={"width": 390, "height": HEIGHT})
    for language, text in (("zh", "无线耳机搜索"), ("ja", "ワイヤレスイヤホン検索"), ("ar", "سماعات لاسلكية")):
        page.goto(f"{base}/?lang={language}")
        assert not page.evaluate(SAME_AS_TOFU, text), f"{language}: {text!r} renders as missing-glyph boxes"
    assert page.evaluate(SAME_AS_TOFU, "\U0010fffd\U0010fffd")  # the check itself can fail
    page.close()


def test_dashboard_on_a_phone(browser, live_shop, tmp_path):  # noqa: F811
    from shoprank.users import create_user

    base, services = live_shop
    with services.db.session() as session:
        create_user(session, "phone@example.com", "browser test password", "admin")
    page = browser.new_page(viewport={"width": 390, "height": HEIGHT})
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=email]", "phone@example.com")
    page.fill("input[name=password]", "browser test password")
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/**")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        for path in ("/dashboard/", "/dashboard/search-analytics", "/dashboard/suggestions",
                     "/dashboard/ops", "/dashboard/admin/users", "/dashboard/calculator"):  # fmt: skip
            page.goto(base + path)
            _no_overflow(page, (width, path))
            assert not page.locator(".dash-nav").is_visible()  # collapsed behind the menu button
        page.click("label.menu-button")
        nav = page.locator(".dash-nav")
        assert nav.is_visible()
        links = nav.locator("a")
        for i in range(links.count()):  # every item on the screen, light on the dark header
            box = links.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, links.nth(i).inner_text()
        _no_overflow(page, (width, "menu open"))
    page.screenshot(path=str(_shots(tmp_path) / "mobile-dashboard-analytics.png"))
    page.close()
