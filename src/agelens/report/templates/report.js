(function () {
  "use strict";
  // Highlight the section in view in the side nav.
  var links = Array.prototype.slice.call(document.querySelectorAll(".toc a"));
  if ("IntersectionObserver" in window && links.length) {
    var byId = {};
    links.forEach(function (a) { byId[a.getAttribute("href").slice(1)] = a; });
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting && byId[e.target.id]) {
          links.forEach(function (a) { a.classList.remove("active"); });
          byId[e.target.id].classList.add("active");
        }
      });
    }, { rootMargin: "0px 0px -70% 0px" });
    Object.keys(byId).forEach(function (id) { var el = document.getElementById(id); if (el) io.observe(el); });
  }

  // Esc closes an enlarged figure (a click on it closes it too, with no script).
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    Array.prototype.forEach.call(document.querySelectorAll("details.zoom[open]"), function (d) { d.open = false; });
  });

  // A printed or PDF copy has no clicks: folded reference (model card, glossary) opens for it.
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details.fold"), function (d) { d.open = true; });
  });

  // A table cut off on the right says so: "scroll →" above it, only while it really overflows.
  var wraps = Array.prototype.slice.call(document.querySelectorAll(".table-wrap"));
  var hints = wraps.map(function (w) {
    var hint = document.createElement("p");
    hint.className = "scroll-hint";
    hint.setAttribute("aria-hidden", "true");
    hint.textContent = "scroll → for more columns";
    w.parentNode.insertBefore(hint, w);
    return hint;
  });
  function markOverflow() {
    wraps.forEach(function (w, i) { hints[i].classList.toggle("on", w.scrollWidth > w.clientWidth + 1); });
  }
  markOverflow();
  window.addEventListener("resize", markOverflow);

  // Gallery: every card swaps its map when a select changes; data keys are "method-layer-target" indices.
  var blob = document.getElementById("gallery-data");
  if (!blob) return;
  var data = JSON.parse(blob.textContent);
  var sel = {
    m: document.getElementById("sel-method"), l: document.getElementById("sel-layer"),
    t: document.getElementById("sel-target"), f: document.getElementById("sel-filter")
  };
  var cards = Array.prototype.slice.call(document.querySelectorAll(".gcard"));
  var status = document.getElementById("gallery-status");
  var printSel = document.getElementById("print-selection");

  function key(m, l, t) { return [m, l, t].join("-"); }
  function count(k) {
    return data.items.filter(function (it) { return it.maps[k]; }).length;
  }
  var available = data.items.reduce(function (acc, it) {
    Object.keys(it.maps).forEach(function (k) { if (it.maps[k]) acc.push(k.split("-")); });
    return acc;
  }, []);
  function markOptions() {
    // An option with no maps under any combination says so (others snap, see below).
    [sel.m, sel.l, sel.t].forEach(function (s, d) {
      Array.prototype.forEach.call(s.options, function (o) {
        var any = available.some(function (p) { return p[d] === o.value; });
        if (!any) o.textContent += "  (no maps)";
      });
    });
  }
  function label(s) { return s.options[s.selectedIndex].textContent.replace("  (no maps)", ""); }
  function update() {
    var k = key(sel.m.value, sel.l.value, sel.t.value);
    var shown = 0;
    // Alt text names what the map shows, for screen readers and when an image fails to load.
    var choice = label(sel.m) + " map, layer " + label(sel.l) + ", target " + label(sel.t);
    cards.forEach(function (card, i) {
      var item = data.items[i];
      var img = card.querySelector("img.overlay");
      img.alt = choice + ": " + card.getAttribute("data-title");
      var miss = card.querySelector(".map-missing");
      var uri = item.maps[k];
      // Signed maps (for/against) read on another bar than plain ones: the label says which.
      var kind = card.querySelector(".map-kind");
      if (kind && item.signed) kind.textContent = item.signed.indexOf(k) >= 0 ? "signed map" : "map";
      if (uri) {
        img.src = uri; img.hidden = false; miss.hidden = true; shown++;
      } else {
        img.hidden = true; miss.hidden = false;
        miss.textContent = (k in item.maps) ? "overlay file missing" : "no map for this selection";
      }
      var box = card.querySelector(".filters");
      if (box && sel.f) {
        var f = sel.f.value, grid = f === "" ? null : item.filters[f];
        box.hidden = f === "";
        var gimg = box.querySelector("img"), gmiss = box.querySelector(".missing");
        if (grid) {
          gimg.src = grid; gimg.hidden = false; gmiss.hidden = true;
          gimg.alt = "filter grid, " + label(sel.f) + ": " + card.getAttribute("data-title");
        }
        else { gimg.hidden = true; gmiss.hidden = f === ""; }
      }
    });
    if (status) status.textContent = shown + " of " + cards.length + " images have a map for this choice";
    if (printSel) {
      printSel.textContent = "Showing: " + [sel.m, sel.l, sel.t].map(function (s) {
        return s.options[s.selectedIndex].textContent;
      }).join(" · ");
    }
  }
  function snap(changed) {
    // Keep the viewer's new choice and move the other two to a combination that has maps
    // (e.g. switching to a pixel method, whose maps are recorded under the "input" layer).
    if (count(key(sel.m.value, sel.l.value, sel.t.value))) return;
    var dims = [sel.m, sel.l, sel.t], fixed = dims.indexOf(changed);
    var now = dims.map(function (s) { return s.value; });
    function kept(p) { return p.filter(function (v, i) { return v === now[i]; }).length; }
    var found = available.filter(function (p) { return fixed < 0 || p[fixed] === changed.value; });
    found.sort(function (a, b) { return kept(b) - kept(a); });  // change as little as possible
    if (found.length) dims.forEach(function (s, i) { s.value = found[0][i]; });
  }
  [sel.m, sel.l, sel.t].forEach(function (s) { s.addEventListener("change", function () { snap(s); update(); }); });
  if (sel.f) sel.f.addEventListener("change", update);
  markOptions();
  update();
})();
