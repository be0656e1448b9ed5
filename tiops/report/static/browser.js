// The object browser: search, AND/OR conditions (the ingestion-rule operators), sort, pages.
// Rows live in the JSON blob above; only one page of them is ever in the DOM.
(function () {
  "use strict";
  var PAGE = 50;
  var blob = JSON.parse(document.getElementById("objects-data").textContent);
  var columns = blob.columns, rows = blob.rows, col = {};
  columns.forEach(function (name, i) { col[name] = i; });
  var state = { page: 0, sort: "name", descending: false, shown: rows };

  function text(value) { return Array.isArray(value) ? value.join(", ") : value === null || value === undefined ? "" : String(value); }
  function fold(value) { return text(value).toLowerCase(); }
  function values(value) { return Array.isArray(value) ? value : [value]; }

  function test(row, condition) {
    var value = row[col[condition.field]], expected = condition.value, low = expected.toLowerCase();
    var present = !(value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0));
    if (condition.op === "exists") { return present; }
    if (condition.op === "not-exists") { return !present; }
    if (condition.op === "not-equals") { return !values(value).some(function (v) { return fold(v) === low; }); }
    if (!present) { return false; }
    return values(value).some(function (v) {
      var s = fold(v), n = Number(v), m = Number(expected);
      switch (condition.op) {
        case "contains": return s.indexOf(low) !== -1;
        case "equals": return s === low;
        case "starts-with": return s.indexOf(low) === 0;
        case "ends-with": return s.length >= low.length && s.slice(s.length - low.length) === low;
        case "matches": try { return new RegExp(expected).test(text(v)); } catch (e) { return false; }
        case "in": return expected.split(",").map(function (x) { return x.trim().toLowerCase(); }).indexOf(s) !== -1;
        case ">": return typeof v === "number" ? n > m : text(v) > expected;
        case ">=": return typeof v === "number" ? n >= m : text(v) >= expected;
        case "<": return typeof v === "number" ? n < m : text(v) < expected;
        case "<=": return typeof v === "number" ? n <= m : text(v) <= expected;
      }
      return false;
    });
  }

  function conditions() {
    return Array.prototype.map.call(document.querySelectorAll("#conditions .condition"), function (node) {
      return { field: node.querySelector(".field").value, op: node.querySelector(".op").value, value: node.querySelector(".value").value };
    }).filter(function (c) { return c.value !== "" || c.op === "exists" || c.op === "not-exists"; });
  }

  function refresh() {
    var query = document.getElementById("search").value.trim().toLowerCase();
    var tests = conditions(), any = document.getElementById("combine").value === "any";
    state.shown = rows.filter(function (row) {
      if (query && [row[col.name], row[col.id], row[col.labels], row[col.source]].map(fold).join(" ").indexOf(query) === -1) { return false; }
      if (!tests.length) { return true; }
      return any ? tests.some(function (t) { return test(row, t); }) : tests.every(function (t) { return test(row, t); });
    });
    var i = col[state.sort], sign = state.descending ? -1 : 1;
    state.shown = state.shown.slice().sort(function (a, b) {
      var x = a[i], y = b[i];
      if (typeof x === "number" || typeof y === "number") { x = x === null ? -1 : x; y = y === null ? -1 : y; }
      else { x = fold(x); y = fold(y); }
      return x < y ? -sign : x > y ? sign : (a[col.id] < b[col.id] ? -1 : 1);
    });
    state.page = Math.min(state.page, Math.max(0, Math.ceil(state.shown.length / PAGE) - 1));
    draw();
  }

  function cell(tr, value) { var td = document.createElement("td"); td.textContent = text(value); tr.appendChild(td); return td; }

  function draw() {
    var body = document.querySelector("#results tbody"), start = state.page * PAGE;
    var fragment = document.createDocumentFragment();
    state.shown.slice(start, start + PAGE).forEach(function (row) {
      var tr = document.createElement("tr"), td = document.createElement("td"), a = document.createElement("a");
      a.href = row[col.href]; a.textContent = text(row[col.name]) || row[col.id]; td.appendChild(a); tr.appendChild(td);
      ["type", "source", "tlp", "confidence", "labels", "modified"].forEach(function (name) { cell(tr, row[col[name]]); });
      fragment.appendChild(tr);
    });
    body.replaceChildren(fragment);
    var pages = Math.max(1, Math.ceil(state.shown.length / PAGE));
    document.getElementById("status").textContent = state.shown.length + " of " + rows.length + " objects";
    document.getElementById("page").textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
    document.querySelectorAll("th[data-sort]").forEach(function (th) {
      if (th.dataset.sort === state.sort) { th.setAttribute("aria-sort", state.descending ? "descending" : "ascending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }

  var timer = null;
  function later() { clearTimeout(timer); timer = setTimeout(function () { state.page = 0; refresh(); }, 120); }
  document.getElementById("search").addEventListener("input", later);
  document.getElementById("combine").addEventListener("change", later);
  document.getElementById("conditions").addEventListener("input", later);
  document.getElementById("conditions").addEventListener("click", function (event) {
    if (event.target.classList.contains("remove")) { event.target.parentNode.remove(); later(); }
  });
  document.getElementById("add-condition").addEventListener("click", function () {
    var node = document.getElementById("condition-template").content.cloneNode(true);
    document.getElementById("conditions").appendChild(node);
  });
  document.getElementById("prev").addEventListener("click", function () { state.page -= 1; draw(); });
  document.getElementById("next").addEventListener("click", function () { state.page += 1; draw(); });
  document.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      state.descending = state.sort === th.dataset.sort ? !state.descending : false;
      state.sort = th.dataset.sort; refresh();
    });
  });
  refresh();
})();
