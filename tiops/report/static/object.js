// The object page: one page for every object. The id is in the address (object.html#<id>);
// the page loads the data file ("shard") holding that object as a <script>, because a page
// opened from file:// may not fetch() files, then draws it. Every value from intel is set
// as text (textContent, setAttribute), never as markup.
(function () {
  "use strict";
  var WIDTH = Number(document.getElementById("object-script").dataset.width) || 1;
  // The shard files the report has (object.html lists them): no shard, no such object.
  var EXISTING = Object.create(null);
  document.getElementById("object-script").dataset.shards.split(" ").forEach(function (key) { EXISTING[key] = true; });
  var SVG = "http://www.w3.org/2000/svg";
  var GRAPH_NEIGHBOURS = 24;
  var shards = Object.create(null), requested = Object.create(null);
  // Shards that called the page (as their script ran) and shards that cannot be read (key -> message).
  var called = Object.create(null), broken = Object.create(null);
  var printable = TiopsData.printable;  // every text from intel goes through it (data.js)
  var scroll = TiopsData.keepScroll();
  function own(object, key) { return Object.prototype.hasOwnProperty.call(object, key); }
  function shardFile(key) { return "data/objects/" + key + ".js"; }

  window.TiopsReport = {
    shard: function (key, packed) {
      // Only from the file of that shard, once: a file holding another key (copied over a
      // shard by hand) is a damaged file, not the data of that other shard.
      if (called[key] || !TiopsData.running(shardFile(key))) { return; }
      called[key] = true;
      TiopsData.inflate(packed).then(function (entries) {
        var byId = Object.create(null);  // no inherited "constructor" or "__proto__" entry for an id from the address
        entries.forEach(function (entry) { byId[entry.o.id] = entry; });
        return byId;
      }).then(function (byId) { shards[key] = byId; show(); }, function () {
        // Not base64, not deflate or not a list of objects: a damaged file, said as such.
        broken[key] = TiopsData.broken(shardFile(key), "is damaged");
        show();
      });
    }
  };

  // The same key as tiops/report/shards.py shard_key.
  function shardKey(id) {
    var cut = id.indexOf("--"), head = cut === -1 ? "" : id.slice(cut + 2, cut + 2 + WIDTH).toLowerCase();
    return head.length === WIDTH && /^[0-9a-f]+$/.test(head) ? head : new Array(WIDTH + 1).join("0");
  }
  function currentId() {
    try { return decodeURIComponent(location.hash.slice(1)); } catch (e) { return location.hash.slice(1); }
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = printable(text); }
    if (className) { node.className = className; }
    return node;
  }
  function textNode(text) { return document.createTextNode(printable(text)); }
  function svg(tag, attributes, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attributes).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text !== undefined) { node.textContent = printable(text); }
    return node;
  }
  function link(id, text, title) {
    var a = element("a", text);
    a.href = "#" + encodeURIComponent(id);
    if (title) { a.title = printable(title); }
    return a;
  }
  function sortedKeys(value) {
    if (Array.isArray(value)) { return value.map(sortedKeys); }
    if (value === null || typeof value !== "object") { return value; }
    // Every key as stored: "copy[key] =" on a plain object would set its prototype for a
    // "__proto__" key from intel and leave the key out of what the page shows.
    var copy = Object.create(null);
    Object.keys(value).sort().forEach(function (key) {
      Object.defineProperty(copy, key, { value: sortedKeys(value[key]), enumerable: true, writable: true, configurable: true });
    });
    return copy;
  }

  // --- Properties: references by name (TLP markings by TLP name), external references as
  // a table where only http(s) URLs are links, everything else as text or JSON. -----------
  function propertyCell(key, value, entry) {
    var td = element("td");
    var refs = key.slice(-5) === "_refs" && Array.isArray(value) ? value : key.slice(-4) === "_ref" ? [value] : null;
    if (refs !== null && refs.every(function (ref) { return typeof ref === "string"; })) {
      var list = element("ul", null, "refs");
      refs.forEach(function (ref) {
        var known = own(entry.r, ref) ? entry.r[ref] : [ref, false], li = element("li");
        if (known[1]) { li.appendChild(link(ref, known[0], ref)); }
        else { var span = element("span", known[0]); span.title = printable(ref); li.appendChild(span); }
        list.appendChild(li);
      });
      td.appendChild(list);
    } else if (key === "external_references" && Array.isArray(value)
               && value.every(function (r) { return r !== null && typeof r === "object" && !Array.isArray(r); })) {
      var table = element("table", null, "external"), head = element("tr"), body = element("tbody");
      ["Source", "External id", "URL"].forEach(function (title) { head.appendChild(element("th", title)); });
      table.appendChild(element("thead")).appendChild(head);
      value.forEach(function (reference) {
        var tr = element("tr"), url = typeof reference.url === "string" ? reference.url : "";
        tr.appendChild(element("td", reference.source_name === undefined ? "" : String(reference.source_name)));
        tr.appendChild(element("td", reference.external_id === undefined ? "" : String(reference.external_id)));
        var cell = element("td");
        // Only web links are clickable: a javascript: or data: URL from intel must never run.
        if (/^https?:\/\//i.test(url)) {
          var a = element("a", url);
          a.href = url; a.rel = "noopener noreferrer";
          cell.appendChild(a);
        } else { cell.appendChild(textNode(url)); }
        if (reference.description) { cell.appendChild(element("br")); cell.appendChild(textNode(String(reference.description))); }
        tr.appendChild(cell);
        body.appendChild(tr);
      });
      table.appendChild(body);
      td.appendChild(table);
    } else {
      var text = typeof value === "string" ? value : JSON.stringify(sortedKeys(value), null, 2);
      // Several lines keep their line breaks (and tabs); every other control is escaped.
      var lines = text.indexOf("\n") !== -1, holder = lines ? td.appendChild(element("pre")) : td;
      if (typeof value === "string" && (key === "description" || key === "x_mitre_detection")) {
        markdown(holder, text, lines, citations(entry.o.external_references), entry.u || {});
      } else { holder.textContent = printable(text, lines); }
    }
    return td;
  }

  // ATT&CK writes descriptions in Markdown: "[text](url)" links and "(Citation: Name)", Name a
  // source_name of the object's external_references. Only these two become links, and only to an
  // http(s) URL (the pattern matches no other scheme: "[x](javascript:...)" stays text, as a
  // javascript: URL in the references table does); all else is text, markup from intel included.
  // A link shows its text, its URL as its title (the address it opens is never hidden); a
  // citation keeps its words and links to the reference's URL, its description as the title.
  // Code, which ATT&CK writes as "<code>cmd.exe</code>" or in backticks, is shown as code: its
  // words as text in a <code> element made here (no markup inside: "<code><b>" stays text).
  // A link to the page of an object this report holds (ATT&CK linking to another technique or
  // tool: entry.u, made by tiops/report/build.py _own_pages) opens that object here, offline,
  // and a small arrow after it still opens the web page.
  var MARKUP = /\[([^\[\]\n]+)\]\((https?:\/\/[^\s()\x00-\x1f]+(?:\([^\s()\x00-\x1f]*\)[^\s()\x00-\x1f]*)*)\)|\(Citation: ([^()\n]+)\)|<code>([^<\n]+)<\/code>|`([^`\n]+)`/gi;
  function webLink(url, text, title) {
    var a = element("a", text);
    a.href = url; a.rel = "noopener noreferrer";
    if (title) { a.title = printable(title); }
    return a;
  }
  function citations(references) {
    var found = Object.create(null);  // by source_name from intel: no inherited entry
    (Array.isArray(references) ? references : []).forEach(function (reference) {
      if (reference !== null && typeof reference === "object" && typeof reference.source_name === "string"
          && typeof reference.url === "string" && /^https?:\/\//i.test(reference.url) && !(reference.source_name in found)) {
        found[reference.source_name] = reference;
      }
    });
    return found;
  }
  function markdown(holder, text, lines, cited, pages) {
    var at = 0, match;
    MARKUP.lastIndex = 0;
    while ((match = MARKUP.exec(text)) !== null) {
      var reference = match[3] === undefined ? null : cited[match[3]];
      if (match[3] !== undefined && !reference) { continue; }  // no such reference with a web URL: text
      holder.appendChild(document.createTextNode(printable(text.slice(at, match.index), lines)));
      if (match[4] !== undefined || match[5] !== undefined) {
        holder.appendChild(element("code", match[4] !== undefined ? match[4] : match[5]));
        at = MARKUP.lastIndex;
        continue;
      }
      var here = reference === null && own(pages, match[2]) ? pages[match[2]] : null;
      if (Array.isArray(here) && typeof here[0] === "string") {
        holder.appendChild(link(here[0], match[1], "In this report: " + here[1]));
        holder.appendChild(webLink(match[2], "\u2197", match[2])).className = "web";
      } else {
        holder.appendChild(reference ? webLink(reference.url, match[0], typeof reference.description === "string" ? reference.description : "")
                                     : webLink(match[2], match[1], match[2]));
      }
      at = MARKUP.lastIndex;
    }
    holder.appendChild(document.createTextNode(printable(text.slice(at), lines)));
  }

  function shorten(text, width) { return text.length <= width ? text : text.slice(0, width - 1) + "\u2026"; }
  function round(value) { return Math.round(value * 10) / 10; }

  // A radial layout: the object in the middle, the objects it relates to around it.
  function graph(entry, relationships) {
    var size = 640, radius = 170, middle = size / 2, shown = relationships.slice(0, GRAPH_NEIGHBOURS);
    var root = svg("svg", { "class": "graph", role: "img", "aria-label": "Relationship graph", width: size, height: size,
                            viewBox: "0 0 " + size + " " + size });
    var nodes = shown.map(function (rel, index) {
      var angle = 2 * Math.PI * index / Math.max(1, shown.length) - Math.PI / 2;
      var x = round(middle + radius * Math.cos(angle)), y = round(middle + radius * Math.sin(angle));
      // Labels point away from the centre so they stay inside the drawing.
      var anchor = Math.abs(x - middle) < 20 ? "middle" : (x > middle ? "start" : "end");
      var labelX = anchor === "middle" ? x : (anchor === "start" ? x + 11 : x - 11);
      var labelY = anchor === "middle" && y < middle ? y - 11 : (anchor === "middle" ? y + 21 : y + 4);
      return { rel: rel, x: x, y: y, anchor: anchor, labelX: labelX, labelY: labelY };
    });
    nodes.forEach(function (node) {
      root.appendChild(svg("line", { x1: middle, y1: middle, x2: node.x, y2: node.y }));
      root.appendChild(svg("text", { "class": "edge", x: round((middle + node.x) / 2), y: round((middle + node.y) / 2),
                                     "text-anchor": "middle" }, node.rel[0]));
    });
    nodes.forEach(function (node) {
      var rel = node.rel, type = rel[2].split("--")[0], holder = root;
      if (rel[4]) { holder = root.appendChild(svg("a", { href: "#" + encodeURIComponent(rel[2]) })); }
      var circle = holder.appendChild(svg("circle", { "class": "node t-" + type, cx: node.x, cy: node.y, r: 7 }));
      circle.appendChild(svg("title", {}, type));
      var label = holder.appendChild(svg("text", { x: node.labelX, y: node.labelY, "text-anchor": node.anchor }, shorten(rel[3], 22)));
      label.appendChild(svg("title", {}, rel[0] + ": " + rel[3]));
    });
    root.appendChild(svg("circle", { "class": "center t-" + entry.o.type, cx: middle, cy: middle, r: 11 }));
    root.appendChild(svg("text", { "class": "center", x: middle, y: middle + 26, "text-anchor": "middle" }, shorten(entry.n, 28)));
    return root;
  }

  function draw(entry) {
    var article = document.getElementById("object"), obj = entry.o, relationships = entry.l;
    document.title = printable(entry.n) + " \u00b7 tiops report";
    var h1 = element("h1");
    h1.appendChild(element("span", obj.type, "type"));
    h1.appendChild(textNode(" " + entry.n));
    if (obj.revoked) { h1.appendChild(document.createTextNode(" ")); h1.appendChild(element("span", "revoked", "revoked")); }
    if (obj.x_mitre_deprecated === true) { h1.appendChild(document.createTextNode(" ")); h1.appendChild(element("span", "deprecated", "deprecated")); }
    var idLine = element("p", null, "id");
    idLine.appendChild(element("code", obj.id));
    var table = element("table", null, "properties");
    Object.keys(obj).sort().forEach(function (key) {
      var tr = element("tr");
      tr.appendChild(element("th", key));
      tr.appendChild(propertyCell(key, obj[key], entry));
      table.appendChild(tr);
    });
    var parts = [h1, idLine, element("h2", "Properties"), table, element("h2", "Relationships (" + relationships.length + ")")];
    if (relationships.length) {
      parts.push(graph(entry, relationships));
      if (relationships.length > GRAPH_NEIGHBOURS) {
        parts.push(element("p", "The graph shows the first " + GRAPH_NEIGHBOURS + "; the list has all " + relationships.length + ".", "more"));
      }
      var list = element("ul", null, "relationships");
      relationships.forEach(function (rel) {  // [type, outgoing, other id, other name, other has a page, relationship id]
        var li = element("li"), other = rel[4] ? link(rel[2], rel[3]) : textNode(rel[3]);
        if (rel[1]) { li.appendChild(document.createTextNode("this ")); li.appendChild(link(rel[5], rel[0])); li.appendChild(document.createTextNode(" ")); li.appendChild(other); }
        else { li.appendChild(other); li.appendChild(document.createTextNode(" ")); li.appendChild(link(rel[5], rel[0])); li.appendChild(document.createTextNode(" this")); }
        list.appendChild(li);
      });
      parts.push(list);
    } else { parts.push(element("p", "No relationships.", "empty")); }
    // The objects that name this one in a *_ref(s) property (tiops/report/build.py _referrers):
    // a sighting of it, a report or note about it. Left out when there are none.
    var referrers = entry.b || [];
    if (referrers.length) {
      parts.push(element("h2", "Referenced by (" + referrers.length + ")"));
      var referenced = element("ul", null, "referrers");
      referrers.forEach(function (ref) {  // [property, other id, other name]
        var li = element("li");
        li.appendChild(link(ref[1], ref[2], ref[1]));
        li.appendChild(textNode(" (" + ref[1].split("--")[0] + ", " + ref[0] + ")"));
        referenced.appendChild(li);
      });
      parts.push(referenced);
    }
    parts.push(element("h2", "Provenance"));
    if (entry.p) {  // [file, line, source, defaults files, rules]
      var dl = element("dl", null, "provenance");
      [["File", null], ["Source", entry.p[2] || "not set"], ["Defaults from", entry.p[3].join(", ") || "none"],
       ["Changed by ingestion rules", entry.p[4].join(", ") || "none"]].forEach(function (pair) {
        dl.appendChild(element("dt", pair[0]));
        var dd = dl.appendChild(element("dd"));
        if (pair[1] === null) { dd.appendChild(element("code", entry.p[0] + ":" + entry.p[1])); } else { dd.textContent = printable(pair[1]); }
      });
      parts.push(dl);
    } else { parts.push(element("p", "Added by tiops at compile time (a built-in marking or extension definition).")); }
    article.replaceChildren.apply(article, parts);
    // Back or forward to an object seen before: where the analyst was on it; a new one: its top.
    window.scrollTo(0, scroll.saved() || 0);
  }

  var TITLE = document.title;
  // No object to draw: the message alone, not the page (nor the title) of the one shown before.
  function nothing(status, article, message) {
    status.textContent = message;
    article.replaceChildren();
    document.title = TITLE;
  }

  function show() {
    var id = currentId(), status = document.getElementById("object-status"), article = document.getElementById("object");
    if (!id) { nothing(status, article, "No object named: open one from the browser (browse.html)."); return; }
    var key = shardKey(id);
    if (!EXISTING[key]) { nothing(status, article, "The report has no object " + printable(id) + "."); return; }
    if (broken[key]) { nothing(status, article, broken[key]); return; }
    if (!shards[key]) {
      // Said for every id asked while its shard loads, not only the first one.
      status.textContent = "Loading " + printable(id) + "\u2026";
      if (!requested[key]) {
        requested[key] = true;
        TiopsData.load(shardFile(key), function () { return called[key] === true; },
                       function (message) { broken[key] = message; show(); });
      }
      return;
    }
    var entry = shards[key][id];
    if (!entry) { nothing(status, article, "The report has no object " + printable(id) + "."); return; }
    status.textContent = "";
    draw(entry);
  }

  window.addEventListener("hashchange", show);
  show();
})();
