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
  function markOptions() {
    // Tell the viewer which choices have maps given the other two selections.
    [["m", 0], ["l", 1], ["t", 2]].forEach(function (pair) {
      var s = sel[pair[0]];
      Array.prototype.forEach.call(s.options, function (o) {
        var parts = [sel.m.value, sel.l.value, sel.t.value];
        parts[pair[1]] = o.value;
        if (!o.dataset.label) o.dataset.label = o.textContent;
        o.textContent = o.dataset.label + (count(key(parts[0], parts[1], parts[2])) ? "" : "  (no maps)");
      });
    });
  }
  function update() {
    var k = key(sel.m.value, sel.l.value, sel.t.value);
    var shown = 0;
    cards.forEach(function (card, i) {
      var item = data.items[i];
      var img = card.querySelector("img.overlay");
      var miss = card.querySelector(".map-missing");
      var uri = item.maps[k];
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
        if (grid) { gimg.src = grid; gimg.hidden = false; gmiss.hidden = true; }
        else { gimg.hidden = true; gmiss.hidden = f === ""; }
      }
    });
    if (status) status.textContent = shown + " of " + cards.length + " images have a map for this choice";
    if (printSel) {
      printSel.textContent = "Showing: " + [sel.m, sel.l, sel.t].map(function (s) {
        return s.options[s.selectedIndex].dataset.label || s.options[s.selectedIndex].textContent;
      }).join(" · ");
    }
    markOptions();
  }
  [sel.m, sel.l, sel.t, sel.f].forEach(function (s) { if (s) s.addEventListener("change", update); });
  update();
})();
