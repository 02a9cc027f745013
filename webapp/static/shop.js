// Shop beacons: impression, click, add_to_cart, purchase -> POST /api/events.
// Each event carries a client-generated id, so a retried or duplicated beacon is stored once.
// No inline scripts anywhere: configuration comes from data-* attributes (strict-CSP friendly).
(function () {
  "use strict";

  var body = document.body;
  var eventsUrl = body.getAttribute("data-events-url") || "/api/events";
  var CART_KEY = "shoprank.cart";

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // Plain-HTTP pages on a LAN address are not a secure context: no randomUUID there.
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function send(events) {
    var payload = JSON.stringify({ events: events });
    // sendBeacon survives navigation (a click that opens the product page); fetch keepalive is the fallback.
    if (navigator.sendBeacon) {
      var blob = new Blob([payload], { type: "application/json" });
      if (navigator.sendBeacon(eventsUrl, blob)) { return; }
    }
    fetch(eventsUrl, {
      method: "POST",
      body: payload,
      headers: { "Content-Type": "application/json" },
      keepalive: true,
      credentials: "same-origin"
    }).catch(function () { /* analytics must never break shopping */ });
  }

  function base(type) {
    return { id: uuid(), type: type, ts: Date.now() };
  }

  function positionOf(el) {
    var value = parseInt(el.getAttribute("data-position") || "", 10);
    return isNaN(value) ? undefined : value;
  }

  var results = document.getElementById("results");
  var impressionId = results ? results.getAttribute("data-impression-id") : null;

  // Impression: what this shopper was shown, in order, and whether it was reranked.
  if (results && impressionId) {
    var items = [];
    results.querySelectorAll("article.card").forEach(function (card) {
      var item = { sku: card.getAttribute("data-sku"), position: positionOf(card) };
      var team = card.getAttribute("data-team");  // interleaving experiments: which ranker placed it
      if (team) { item.team = team; }
      items.push(item);
    });
    var impression = base("impression");
    impression.id = impressionId;
    // A listing without a query (category, brand, deals, home) is its own kind of impression: no query is sent,
    // so the events API stores it as a listing view instead of rejecting an empty query.
    var listing = results.getAttribute("data-listing") || "search";
    if (listing === "search") {
      impression.query = results.getAttribute("data-query");
    } else {
      impression.listing = listing;
    }
    impression.language = results.getAttribute("data-language");
    impression.reranked = results.getAttribute("data-reranked") === "true";
    impression.items = items;
    impression.request_id = results.getAttribute("data-request-id") || undefined;
    impression.experiment = results.getAttribute("data-experiment") || undefined;
    impression.variant = results.getAttribute("data-variant") || undefined;
    // What the search really served (the experiment report's delivery check and guardrails read these).
    impression.rerank_status = results.getAttribute("data-rerank-status") || undefined;
    var depth = parseInt(results.getAttribute("data-rerank-depth") || "", 10);
    impression.rerank_depth = isNaN(depth) ? undefined : depth;
    var took = parseFloat(results.getAttribute("data-search-ms") || "");
    impression.search_ms = isNaN(took) ? undefined : took;
    var scorerKind = results.getAttribute("data-scorer-kind");
    if (scorerKind) {
      impression.scorer = { kind: scorerKind, model_id: results.getAttribute("data-scorer-model") || undefined };
    }
    send([impression]);
  }

  // Clicks on a result (title or image) lead to the product page.
  if (results) {
    results.addEventListener("click", function (e) {
      var link = e.target.closest("a.card-link");
      if (!link) { return; }
      var click = base("click");
      click.sku = link.getAttribute("data-sku");
      click.position = positionOf(link);
      click.impression_id = impressionId || undefined;
      send([click]);
    });
  }

  function cartCount() {
    var n = parseInt(window.localStorage.getItem(CART_KEY) || "0", 10);
    return isNaN(n) ? 0 : n;
  }

  function showCart() {
    var el = document.getElementById("cart-count");
    if (el) { el.textContent = String(cartCount()); }
  }

  var toastTimer = null;
  function toast(message) {
    var el = document.getElementById("toast");
    if (!el) { return; }
    el.textContent = message;
    el.hidden = false;
    el.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.classList.remove("show"); el.hidden = true; }, 2600);
  }

  function commerce(button, type) {
    var event = base(type);
    event.sku = button.getAttribute("data-sku");
    event.position = positionOf(button);
    event.impression_id = button.getAttribute("data-impression") || impressionId || undefined;
    if (type === "add_to_cart") {
      event.quantity = 1;
    } else {
      event.quantity = 1;
      event.value = parseFloat(button.getAttribute("data-price") || "0");
      event.currency = button.getAttribute("data-currency");
    }
    send([event]);
  }

  document.addEventListener("click", function (e) {
    var cart = e.target.closest("button.btn-cart");
    if (cart) {
      commerce(cart, "add_to_cart");
      window.localStorage.setItem(CART_KEY, String(cartCount() + 1));
      showCart();
      toast(body.getAttribute("data-msg-added"));
      return;
    }
    var buy = e.target.closest("button.btn-buy");
    if (buy) {
      commerce(buy, "purchase");
      toast(body.getAttribute("data-msg-ordered"));
    }
  });

  // Narrow screens: the filters live in a sheet behind the "Filters" button (shop.css hides them there).
  var sheet = document.getElementById("filter-sheet");
  var opener = document.querySelector("[data-open-filters]");
  function setSheet(open) {
    if (!sheet) { return; }
    sheet.classList.toggle("open", open);
    body.classList.toggle("sheet-open", open);
    if (opener) { opener.setAttribute("aria-expanded", open ? "true" : "false"); }
    if (open) {
      var first = sheet.querySelector("button, input, select");
      if (first) { first.focus(); }
    } else if (opener) {
      opener.focus();
    }
  }
  if (sheet && opener) {
    opener.addEventListener("click", function () { setSheet(true); });
    sheet.querySelectorAll("[data-close-filters]").forEach(function (button) {
      button.addEventListener("click", function () { setSheet(false); });
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && sheet.classList.contains("open")) { setSheet(false); }
    });
  }

  showCart();
})();
