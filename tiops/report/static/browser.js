// The object browser: the query language (query.js), free-text search, a condition
// builder with nested groups, sort and pages, all kept in the page address (#q=...).
// The rows come from data/index.js (a compact index, loaded as a <script> because a page
// opened from file:// may not fetch() files); a query over a field the index lacks loads
// the object shards (data/objects/*.js) first. Only one page of rows is ever in the DOM.
(function () {
  "use strict";
  var PAGE = 50;
  var Q = window.TiopsQuery;
  var printable = TiopsData.printable;  // every text from intel goes through it (data.js)
  var scroll = TiopsData.keepScroll(), scrolled = false;  // back to these results: where the analyst was
  var catalogue = JSON.parse(document.getElementById("catalogue").textContent);
  var rows = null, index = null, full = null, pending = 0, waiting = [];
  var called = Object.create(null);  // data files that called the page as their script ran ("index", shard keys)
  var ROW_FIELDS = { source: true, tlp: true, file: true };
  var DERIVED = ["observable", "observable_type", "external_id"];  // tiops/query/view.py DERIVED_FIELDS
  var state = { page: 0, sort: "name", descending: false, shown: [] };

  // data/index.js calls TiopsReport.index(...); each shard calls TiopsReport.shard(key, objects).
  window.TiopsReport = {
    // Each only from its own file, once (TiopsData.running): a shard put in another's place
    // must not count as that other one and end the wait with its objects missing.
    index: function (packed) {
      if (called.index || !TiopsData.running("data/index.js")) { return; }
      called.index = true;
      TiopsData.inflate(packed).then(function (data) {
        return { data: data, rows: data.rows.map(function (values) { return toRow(data.fields, values); }) };
      }).then(function (read) { index = read.data; rows = read.rows; refresh(); },
              function () { failed(TiopsData.broken("data/index.js", "is damaged")); });
    },
    shard: function (key, packed) {
      if (full === null || called[key] || !TiopsData.running("data/objects/" + key + ".js")) { return; }
      called[key] = true;
      TiopsData.inflate(packed).then(function (entries) {
        entries.forEach(function (entry) { full[entry.o.id] = entry.o; });
      }).then(function () {
        pending -= 1;
        if (pending === 0) { shardsLoaded(); }
      }, function () { failed(TiopsData.broken("data/objects/" + key + ".js", "is damaged")); });
    }
  };
  // A data file that is missing or damaged: said above the table, whose rows stay as they were.
  function failed(message) { document.getElementById("loading").textContent = message; }
  // An index row: display name (null: the name property), source, TLP, then the fields.
  function toRow(fields, values) {
    var d = {};
    for (var i = 3; i < fields.length; i++) { if (values[i] !== null) { d[fields[i]] = values[i]; } }
    return { d: d, s: values[1], t: values[2], n: values[0] !== null ? values[0] : d.name, h: "object.html#" + encodeURIComponent(d.id) };
  }
  // The first page of the default view (sorted by name) is in browse.html itself, so the
  // page shows rows at once; the index (search, sort, other pages) follows.
  var preview = JSON.parse(document.getElementById("first-page").textContent);
  preview.rows = preview.rows.map(function (values) { return toRow(preview.fields, values); });

  // Does the query read a field the index does not hold?
  function needsShards(node) {
    if (!node) { return false; }
    if (node.all || node.any) { return (node.all || node.any).some(needsShards); }
    if (node.not) { return needsShards(node.not); }
    var head = node.field.split(".")[0];
    head = head === "tags" ? "labels" : head;
    return !ROW_FIELDS[head] && index.fields.indexOf(head) < 3;
  }
  function loadShards(then) {
    waiting.push(then);
    if (full !== null) { return; }
    full = Object.create(null);  // by id from intel: no inherited "__proto__" or "constructor" entry
    pending = index.shards.length;
    document.getElementById("loading").textContent = "Loading the data of " + rows.length + " objects for this query\u2026";
    index.shards.forEach(function (key) {
      TiopsData.load("data/objects/" + key + ".js", function () { return called[key] === true; }, failed);
    });
    if (pending === 0) { shardsLoaded(); }
  }
  function shardsLoaded() {
    // The object's properties, and the query language's own fields from the index row.
    rows.forEach(function (row) {
      var obj = full[row.d.id];
      if (!obj) { return; }
      // Every property as stored: Object.assign would set the copy's prototype for a "__proto__" key.
      var d = Object.create(null);
      Object.keys(obj).forEach(function (key) {
        Object.defineProperty(d, key, { value: obj[key], enumerable: true, writable: true, configurable: true });
      });
      DERIVED.forEach(function (field) {
        if (Object.prototype.hasOwnProperty.call(row.d, field)) {
          Object.defineProperty(d, field, { value: row.d[field], enumerable: true, writable: true, configurable: true });
        }
      });
      row.d = d;
      row.sortKeys = undefined;  // made again from the whole object
    });
    index.complete = true;
    document.getElementById("loading").textContent = "";
    waiting.splice(0).forEach(function (then) { then(); });
  }
  var SYMBOL = { "equals": "=", "not-equals": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=" };
  var COLUMNS = {
    name: function (row) { return row.n; }, type: function (row) { return row.d.type; }, source: function (row) { return row.s || ""; },
    tlp: function (row) { return row.t || ""; }, confidence: function (row) { return typeof row.d.confidence === "number" ? row.d.confidence : null; },
    labels: function (row) { return row.d.labels || []; }, modified: function (row) { return row.d.modified || ""; }
  };

  function text(value) { return Array.isArray(value) ? value.join(", ") : value === null || value === undefined ? "" : String(value); }
  function fold(value) { return Q.caseless(text(value)); }  // as the query engine folds case (str.casefold)
  // A timestamp as tiops query --sort orders it (tiops.stix.timestamp_key): the seconds, then the
  // fraction without trailing zeros, so ...00.5001Z comes after ...00.500Z whatever the precision.
  function moment(value) {
    var m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(text(value));
    return m ? m[1] + "." + (m[2] || "").replace(/0+$/, "") : fold(value);
  }

  // Free text looks at names, ids, tags, sources, observable values, external ids and aliases.
  function haystack(row) {
    if (row.hay === undefined) {
      row.hay = [row.n, row.d.id, row.d.labels, row.s, row.d.observable, row.d.external_id, row.d.aliases,
                 row.d.x_mitre_aliases].map(fold).join("\n");
    }
    return row.hay;
  }

  // --- The condition builder: groups of conditions and groups, written as an expression.
  function quote(value) {
    return /^[^\s=<>!()\[\],"']+$/.test(value) && !/^(and|or|not)$/i.test(value) ? value : JSON.stringify(value);
  }
  function conditionText(node) {
    var field = node.querySelector(":scope > .field").value, op = node.querySelector(":scope > .op").value;
    var value = node.querySelector(":scope > .value").value.trim();
    if (op === "exists" || op === "not-exists") { return field + " " + op; }
    if (value === "") { return ""; }
    if (op === "in" || op === "not-in") { return field + " " + op + " [" + value.split(",").map(function (v) { return quote(v.trim()); }).join(", ") + "]"; }
    var literal = /^-?\d+(\.\d+)?$/.test(value) || value === "true" || value === "false" ? value : quote(value);
    return field + " " + (SYMBOL[op] || op) + " " + literal;
  }
  function groupText(group) {
    // A nested group's choice is in its head; the root's is inside its label (browse.html).
    var combine = group.querySelector(":scope > .group-head > .combine, :scope > label > .combine, :scope > .combine");
    var parts = Array.prototype.map.call(group.querySelector(":scope > .children").children, function (child) {
      return child.classList.contains("group") ? groupText(child) : conditionText(child);
    }).filter(function (part) { return part !== ""; });
    if (!parts.length) { return ""; }
    return parts.length === 1 ? parts[0] : "(" + parts.join(combine.value === "any" ? " or " : " and ") + ")";
  }
  function addCondition(children) { children.appendChild(document.getElementById("condition-template").content.cloneNode(true)); }
  function addGroup(children) { children.appendChild(document.getElementById("group-template").content.cloneNode(true)); }

  function expression() {
    var typed = document.getElementById("query").value.trim(), built = groupText(document.getElementById("builder"));
    if (typed && built) { return "(" + typed + ") and " + built; }
    return typed || built;
  }

  // --- Filtering, sorting, drawing ----------------------------------------------------
  function refresh() {
    if (rows === null) { return; }  // data/index.js has not arrived yet: it refreshes then
    var words = Q.caseless(document.getElementById("search").value.trim()), predicate, error = document.getElementById("query-error");
    try {
      var source = expression(), tree = source ? Q.parse(source, catalogue) : null;
      predicate = tree ? Q.compile(tree) : null;
      error.textContent = "";
      if (!index.complete && needsShards(tree)) {
        document.getElementById("status").textContent = "";
        document.querySelector("#results tbody").replaceChildren();
        loadShards(refresh);
        return;
      }
    } catch (problem) {
      if (!(problem instanceof Q.QueryError)) { throw problem; }
      error.textContent = printable(problem.message);
      predicate = function () { return false; };
    }
    var shown = rows.filter(function (row) {
      if (words && haystack(row).indexOf(words) === -1) { return false; }
      return predicate === null || predicate(row);
    });
    // Sort keys are computed once per row, not once per comparison: 100k rows sort in a blink.
    var key = COLUMNS[state.sort], sign = state.descending ? -1 : 1;
    var keyed = shown.map(function (row) {
      var folded = row.sortKeys || (row.sortKeys = {});  // folded once per row and column, not at each keystroke
      if (!Object.prototype.hasOwnProperty.call(folded, state.sort)) {
        var value = key(row);
        folded[state.sort] = typeof value === "number" ? value : value === null && state.sort === "confidence" ? null
          : state.sort === "modified" ? moment(value) : fold(value);
      }
      return { row: row, key: folded[state.sort] };
    });
    keyed.sort(function (a, b) {
      var x = a.key, y = b.key;
      // An object without the value comes last either way, as tiops query --sort puts it.
      if (x === null || y === null) { return x === y ? (a.row.d.id < b.row.d.id ? -1 : 1) : x === null ? 1 : -1; }
      return x < y ? -sign : x > y ? sign : (a.row.d.id < b.row.d.id ? -1 : 1);
    });
    state.shown = keyed.map(function (item) { return item.row; });
    state.page = Math.min(state.page, Math.max(0, Math.ceil(state.shown.length / PAGE) - 1));
    remember();
    draw();
  }

  function cell(tr, value) { var td = document.createElement("td"); td.textContent = printable(text(value)); tr.appendChild(td); return td; }

  function draw() {
    var body = document.querySelector("#results tbody"), start = state.page * PAGE;
    var fragment = document.createDocumentFragment();
    state.shown.slice(start, start + PAGE).forEach(function (row) {
      var tr = document.createElement("tr"), td = document.createElement("td"), a = document.createElement("a");
      tr.dataset.id = row.d.id;
      if (row.d.revoked === true) { tr.classList.add("revoked"); }
      if (row.d.x_mitre_deprecated === true) { tr.classList.add("deprecated"); }
      a.href = row.h; a.textContent = printable(text(row.n) || row.d.id); td.appendChild(a);
      if (row.d.revoked === true || row.d.x_mitre_deprecated === true) {
        var badge = document.createElement("span");
        badge.className = row.d.revoked === true ? "revoked" : "deprecated";
        badge.textContent = row.d.revoked === true ? "revoked" : "deprecated";
        td.appendChild(document.createTextNode(" ")); td.appendChild(badge);
      }
      tr.appendChild(td);
      ["type", "source", "tlp", "confidence", "labels", "modified"].forEach(function (name) { cell(tr, COLUMNS[name](row)); });
      fragment.appendChild(tr);
    });
    body.replaceChildren(fragment);
    var count = rows === null ? preview.total : state.shown.length, total = rows === null ? preview.total : rows.length;
    var pages = Math.max(1, Math.ceil(count / PAGE));
    document.getElementById("status").textContent = count + " of " + total + " objects";
    document.getElementById("page").textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = rows === null || state.page >= pages - 1;
    document.querySelectorAll("th[data-sort]").forEach(function (th) {
      if (th.dataset.sort === state.sort) { th.setAttribute("aria-sort", state.descending ? "descending" : "ascending"); }
      else { th.removeAttribute("aria-sort"); }
    });
    // Once, at the first rows drawn, when all above them is in place too: back or forward to this
    // page comes to the same rows (the view is in the address), drawn only now, after the index.
    if (!scrolled) { scrolled = true; if (scroll.saved() !== null) { window.scrollTo(0, scroll.saved()); } }
  }

  // --- The page address keeps the view: #q=EXPR&text=WORDS&sort=FIELD&desc=1&page=N ---
  function remember() {
    var params = new URLSearchParams(), q = expression(), words = document.getElementById("search").value.trim();
    if (q) { params.set("q", q); }
    if (words) { params.set("text", words); }
    if (state.sort !== "name") { params.set("sort", state.sort); }
    if (state.descending) { params.set("desc", "1"); }
    if (state.page) { params.set("page", String(state.page + 1)); }
    var hash = params.toString();
    written = hash;
    if (hash !== location.hash.slice(1)) {
      // The entry's state (its scroll position, data.js keepScroll) stays.
      history.replaceState(history.state, "", hash ? "#" + hash : location.pathname + location.search);
    }
  }
  function restore() {
    var params = new URLSearchParams(location.hash.slice(1));
    document.getElementById("query").value = params.get("q") || "";
    document.getElementById("search").value = params.get("text") || "";
    state.sort = Object.prototype.hasOwnProperty.call(COLUMNS, params.get("sort")) ? params.get("sort") : "name";
    state.descending = params.get("desc") === "1";
    state.page = Math.max(0, (parseInt(params.get("page") || "1", 10) || 1) - 1);
    document.getElementById("builder").querySelector(".children").replaceChildren();
  }

  var timer = null;
  function later() { clearTimeout(timer); timer = setTimeout(function () { state.page = 0; refresh(); }, 120); }
  ["search", "query"].forEach(function (id) { document.getElementById(id).addEventListener("input", later); });
  var builder = document.getElementById("builder");
  builder.addEventListener("input", later);
  builder.addEventListener("change", later);
  builder.addEventListener("click", function (event) {
    var target = event.target, group = target.closest(".group, #builder");
    if (target.classList.contains("remove")) { target.closest(".condition, .group").remove(); later(); }
    else if (target.classList.contains("add-condition")) { addCondition(group.querySelector(":scope > .children")); }
    else if (target.classList.contains("add-group")) { addGroup(group.querySelector(":scope > .children")); }
  });
  document.getElementById("prev").addEventListener("click", function () { state.page -= 1; remember(); draw(); });
  document.getElementById("next").addEventListener("click", function () { state.page += 1; remember(); draw(); });
  document.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      state.descending = state.sort === th.dataset.sort ? !state.descending : false;
      state.sort = th.dataset.sort; refresh();
    });
  });
  // A link or a pasted address changes the hash: show that view.
  var written = null;
  window.addEventListener("hashchange", function () { if (location.hash.slice(1) !== written) { restore(); refresh(); } });
  restore();
  if (!location.hash.slice(1)) { state.shown = preview.rows; draw(); }  // the default view: no query, first page
  TiopsData.load("data/index.js", function () { return called.index === true; }, failed);
})();
