// Search box autocomplete (WAI-ARIA combobox: arrows move, Enter opens, Escape closes) and filter forms that apply
// on change. No inline script and no third-party code: configuration comes from data-* attributes (strict CSP).
(function () {
  "use strict";

  var form = document.querySelector("form.search[data-suggest-url]");
  var input = form ? form.querySelector("input[name=q]") : null;
  var list = document.getElementById("suggestions");

  if (form && input && list) {
    var url = form.getAttribute("data-suggest-url");
    var lang = form.getAttribute("data-lang") || "";
    var items = [];
    var active = -1;
    var timer = null;
    var latest = 0;

    var close = function () {
      list.hidden = true;
      list.textContent = "";
      items = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    };

    var highlight = function (index) {
      active = index;
      items.forEach(function (entry, i) {
        entry.el.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      if (index >= 0) {
        input.setAttribute("aria-activedescendant", items[index].el.id);
        items[index].el.scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    };

    var render = function (suggestions) {
      list.textContent = "";
      items = [];
      active = -1;
      suggestions.forEach(function (s, i) {
        var li = document.createElement("li");
        li.id = "suggestion-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.className = "suggestion kind-" + s.kind;
        li.setAttribute("data-url", s.url);
        var text = document.createElement("span");
        text.className = "suggestion-text";
        text.setAttribute("dir", "auto");
        text.textContent = s.text;
        li.appendChild(text);
        var kindLabel = form.getAttribute("data-kind-" + s.kind);
        if (kindLabel) {
          var kind = document.createElement("span");
          kind.className = "suggestion-kind";
          kind.textContent = kindLabel;
          li.appendChild(kind);
        }
        li.addEventListener("mousedown", function (e) {
          e.preventDefault();  // keep focus in the input until we navigate
          window.location.href = s.url;
        });
        list.appendChild(li);
        items.push({ el: li, url: s.url });
      });
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
    };

    var fetchSuggestions = function () {
      var typed = input.value.trim();
      if (!typed) { close(); return; }
      var ticket = ++latest;
      fetch(url + "?q=" + encodeURIComponent(typed) + (lang ? "&lang=" + encodeURIComponent(lang) : ""), {
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      }).then(function (response) {
        return response.ok ? response.json() : { suggestions: [] };
      }).then(function (data) {
        if (ticket === latest) { render(data.suggestions || []); }
      }).catch(function () { /* suggestions are a convenience; typing still works */ });
    };

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(fetchSuggestions, 120);
    });
    input.addEventListener("keydown", function (e) {
      if (list.hidden || !items.length) { return; }
      if (e.key === "ArrowDown") {
        e.preventDefault();
        highlight((active + 1) % items.length);
      } else if (e.key === "ArrowUp") {
        e.preventDefault();
        highlight(active <= 0 ? items.length - 1 : active - 1);
      } else if (e.key === "Escape") {
        e.preventDefault();
        close();
      } else if (e.key === "Enter" && active >= 0) {
        e.preventDefault();
        window.location.href = items[active].url;
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 150); });
  }

  // Filters and sort apply as soon as they change (the Apply button stays for price fields and no-JS browsers).
  document.querySelectorAll("form[data-autosubmit]").forEach(function (filters) {
    filters.addEventListener("change", function (e) {
      var field = e.target;
      if (field && (field.type === "checkbox" || field.tagName === "SELECT")) {
        var page = filters.querySelector("input[name=page]");
        if (page) { page.remove(); }
        filters.submit();
      }
    });
  });
})();
