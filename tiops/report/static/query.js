// The query language of docs/query.md, in the browser: the same grammar and the same
// meaning as tiops/where.py and tiops/rules/conditions.py (tests/report/test_query_browser.py
// runs the same expressions through both and compares the results).
// window.TiopsQuery = { parse(text, catalogue) -> tree, compile(tree) -> function(row) -> bool }.
// A row is {d: properties plus observable, observable_type, external_id; s: source; t: TLP level}.
(function () {
  "use strict";
  var TOKEN = /\s*(?:("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(>=|<=|!=|==|[=<>()\[\],])|([^\s=<>!()\[\],"']+))/y;
  var SYMBOLS = { "=": "equals", "==": "equals", "!=": "not-equals", ">": ">", ">=": ">=", "<": "<", "<=": "<=" };
  var WORD_OPS = ["in", "not-in", "contains", "starts-with", "ends-with", "matches", "equals", "not-equals"];
  var COMPARISONS = ["equals", "not-equals", ">", ">=", "<", "<=", "in", "not-in"];
  var TLP = ["clear", "green", "amber", "amber+strict", "red"];

  function QueryError(message) { this.message = message; }

  function tokenize(text) {
    var tokens = [], position = 0;
    while (position < text.length) {
      if (text.slice(position).trim() === "") { break; }
      TOKEN.lastIndex = position;
      var match = TOKEN.exec(text);
      if (!match || TOKEN.lastIndex === position) { throw new QueryError("cannot read " + JSON.stringify(text.slice(position))); }
      tokens.push(match[1] !== undefined ? ["str", match[1]] : match[2] !== undefined ? ["sym", match[2]] : ["word", match[3]]);
      position = TOKEN.lastIndex;
    }
    return tokens;
  }

  function parse(text, catalogue) {
    var tokens = tokenize(text), position = 0;
    function peek() { return position < tokens.length ? tokens[position][1] : null; }
    function take() {
      if (position >= tokens.length) { throw new QueryError(JSON.stringify(text) + " ends too early"); }
      return tokens[position++];
    }
    function value() {
      var token = take();
      if (token[0] === "str") { return token[1].slice(1, -1).replace(/\\(.)/g, "$1"); }
      if (token[0] !== "word") { throw new QueryError("expected a value, found " + JSON.stringify(token[1])); }
      if (/^-?\d+$/.test(token[1]) || /^-?\d+\.\d+$/.test(token[1])) { return Number(token[1]); }
      return token[1] === "true" ? true : token[1] === "false" ? false : token[1];
    }
    function test() {
      var field = take();
      if (field[0] !== "word") { throw new QueryError("expected a field name, found " + JSON.stringify(field[1])); }
      var op = take()[1];
      op = SYMBOLS[op] || op.toLowerCase();
      if (op === "exists" || op === "not-exists") { return { field: field[1], op: op }; }
      if (WORD_OPS.indexOf(op) === -1 && !Object.values(SYMBOLS).includes(op)) { throw new QueryError("unknown operator " + JSON.stringify(op)); }
      if (op === "in" || op === "not-in") {
        if (take()[1] !== "[") { throw new QueryError("'" + op + "' needs a list like [a, b]"); }
        var values = [];
        while (peek() !== "]") { values.push(value()); if (peek() === ",") { take(); } }
        take();
        if (!values.length) { throw new QueryError("'" + op + "' needs a non-empty list as its value"); }
        return { field: field[1], op: op, value: values };
      }
      return { field: field[1], op: op, value: value() };
    }
    function factor() {
      var token = peek();
      if (token !== null && token.toLowerCase() === "not") { take(); return { not: factor() }; }
      if (token === "(") {
        take();
        var inner = expr();
        if (peek() !== ")") { throw new QueryError("missing ')' in " + JSON.stringify(text)); }
        take();
        return inner;
      }
      return test();
    }
    function term() {
      var parts = [factor()];
      while ((peek() || "").toLowerCase() === "and") { take(); parts.push(factor()); }
      return parts.length === 1 ? parts[0] : { all: parts };
    }
    function expr() {
      var parts = [term()];
      while ((peek() || "").toLowerCase() === "or") { take(); parts.push(term()); }
      return parts.length === 1 ? parts[0] : { any: parts };
    }
    var tree = expr();
    if (position < tokens.length) { throw new QueryError("unexpected " + JSON.stringify(tokens[position][1]) + " in " + JSON.stringify(text)); }
    if (catalogue) { check(tree, catalogue); }
    return tree;
  }

  // --- Typos are errors (tiops/where.py check_fields) ----------------------------------
  function similarity(a, b) {  // difflib's ratio, close enough for "did you mean"
    var rows = [], best = 0;
    for (var i = 0; i <= a.length; i++) { rows.push(new Array(b.length + 1).fill(0)); }
    for (i = 1; i <= a.length; i++) {
      for (var j = 1; j <= b.length; j++) {
        rows[i][j] = a[i - 1] === b[j - 1] ? rows[i - 1][j - 1] + 1 : Math.max(rows[i - 1][j], rows[i][j - 1]);
        best = Math.max(best, rows[i][j]);
      }
    }
    return 2 * best / (a.length + b.length);
  }
  function nearest(word, choices) {
    choices = choices.filter(function (c, i) { return choices.indexOf(c) === i; });  // a name offered twice is one choice
    return choices.map(function (c) { return [similarity(word, c), c]; }).filter(function (p) { return p[0] >= 0.6; })
      .sort(function (x, y) { return y[0] - x[0] || (x[1] < y[1] ? -1 : 1); }).slice(0, 3).map(function (p) { return "'" + p[1] + "'"; });
  }
  function check(node, catalogue) {
    if (node.all || node.any) { (node.all || node.any).forEach(function (n) { check(n, catalogue); }); return; }
    if (node.not) { check(node.not, catalogue); return; }
    var head = node.field.split(".")[0], kinds = catalogue.kinds;
    if (!(head in kinds) && catalogue.seen.indexOf(head) === -1 && head.indexOf("x_") !== 0) {
      var close = nearest(head, Object.keys(kinds).concat(catalogue.seen));
      throw new QueryError("unknown field '" + head + "'" + (close.length ? "; did you mean " + close.join(" or ") + "?" : ""));
    }
    var rest = node.field.slice(head.length + 1), subfields = (catalogue.subfields || {})[head];
    if (subfields && rest && subfields.indexOf(rest) === -1) {
      var near = nearest(rest, subfields).map(function (name) { return "'" + head + "." + name.slice(1); });
      throw new QueryError("unknown field '" + node.field + "'" + (near.length ? "; did you mean " + near.join(" or ") + "?" : ""));
    }
    // enrichment.* and whois.* read the extension that carries them (catalogue.paths, from tiops/enrich/fields.py).
    if (catalogue.paths && catalogue.paths[head]) { node.path = catalogue.paths[head].concat(node.field.split(".").slice(1)); }
    var kind = kinds[node.field] || "any";
    if (kind === "any" || COMPARISONS.indexOf(node.op) === -1 || !("value" in node)) { return; }
    var ordering = [">", ">=", "<", "<="].indexOf(node.op) !== -1;
    function typed(value) {
      if (kind === "number") {
        if (typeof value !== "number") { throw new QueryError(node.field + " is a number; '" + value + "' is not one"); }
        return value;
      }
      if (kind === "boolean") {
        if (typeof value !== "boolean" || ordering) { throw new QueryError(node.field + " is true or false; '" + value + "' is not"); }
        return value;
      }
      if (kind === "timestamp") {
        var moment = typeof value === "string" && /^\d{4}-\d{2}-\d{2}$/.test(value) ? value + "T00:00:00Z" : value;
        if (typeof moment !== "string" || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(moment) || !realMoment(moment)) {
          throw new QueryError(node.field + " is a timestamp; '" + value + "' is not one");
        }
        return moment;
      }
      if (ordering) { return value; }
      var choices = kind === "stix-type" ? catalogue.stixTypes : kind === "sco-type" ? catalogue.scoTypes : kind === "tlp" ? TLP : null;
      if (choices === null) { return value; }
      var text = typeof value === "string" ? value.toLowerCase() : value;
      if (choices.indexOf(text) !== -1 || (typeof text === "string" && text.indexOf("x-") === 0 && kind !== "tlp")) { return text; }
      var close = nearest(String(value), choices);
      throw new QueryError("'" + value + "' is not a " + { "stix-type": "STIX object type", "sco-type": "cyber-observable type", tlp: "TLP level" }[kind]
        + (close.length ? "; did you mean " + close.join(" or ") + "?" : ""));
    }
    node.value = Array.isArray(node.value) ? node.value.map(typed) : typed(node.value);
  }

  // A day, hour, minute and second that exist (a leap second, 60, is allowed: STIX 2.1 section 3.2).
  function realMoment(text) {
    var y = +text.slice(0, 4), m = +text.slice(5, 7), d = +text.slice(8, 10);
    var probe = new Date(0);
    probe.setUTCFullYear(y, m, 0);  // the last day of month m (Date.UTC would read years below 100 as 19xx)
    var days = probe.getUTCDate();
    return m >= 1 && m <= 12 && d >= 1 && d <= days && +text.slice(11, 13) <= 23 && +text.slice(14, 16) <= 59 && +text.slice(17, 19) <= 60;
  }

  // --- Evaluation (tiops/rules/conditions.py) ------------------------------------------
  var MISSING = {};
  function walk(value, parts) {
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i];
      if (Array.isArray(value)) {
        if (/^\d+$/.test(part)) { value = Number(part) < value.length ? value[Number(part)] : MISSING; }
        else {
          var found = [];
          value.forEach(function (item) {
            var v = walk(item, parts.slice(i));
            if (v !== MISSING) { found = found.concat(Array.isArray(v) ? v : [v]); }
          });
          return found.length ? found : MISSING;
        }
      } else if (value !== null && typeof value === "object") {
        value = Object.prototype.hasOwnProperty.call(value, part) ? value[part] : MISSING;
      } else { return MISSING; }
      if (value === MISSING) { return MISSING; }
    }
    return value;
  }
  function getter(field, path) {
    if (path) { return function (row) { return walk(row.d, path); }; }
    if (field === "source") { return function (row) { return row.s === null || row.s === undefined ? MISSING : row.s; }; }
    if (field === "tlp") { return function (row) { return row.t ? row.t : MISSING; }; }
    if (field === "file") { return function () { return ""; }; }
    var parts = (field === "tags" ? "labels" : field).split(".");
    return function (row) { return walk(row.d, parts); };
  }
  function fold(value) { return typeof value === "string" ? value.toLowerCase() : value; }
  function timestampKey(text) {
    if (typeof text !== "string" || text.length < 20 || text[text.length - 1] !== "Z" || text[10] !== "T" || text[4] !== "-" || text[13] !== ":") { return null; }
    if (text.length === 20) { return [text.slice(0, 19), ""]; }
    if (text[19] !== ".") { return null; }
    return [text.slice(0, 19), text.slice(20, -1).replace(/0+$/, "")];
  }
  function compareKeys(a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0; }
  function isNumber(v) { return typeof v === "number"; }
  var ORDER = { ">": function (c) { return c > 0; }, ">=": function (c) { return c >= 0; }, "<": function (c) { return c < 0; }, "<=": function (c) { return c <= 0; } };

  function elementTest(op, expected) {
    if (op === "in" || op === "not-in" || op === "equals" || op === "not-equals") {
      // A timestamp equals the moment it names whatever its precision, as the ordering comparisons take it.
      var values = Array.isArray(expected) ? expected : [expected], moments = [], folded = [];
      values.forEach(function (e) { var k = timestampKey(e); if (k !== null) { moments.push(k.join("|")); } else { folded.push(fold(e)); } });
      return function (v) {
        if (typeof v === "string") {
          if (folded.indexOf(v.toLowerCase()) !== -1) { return true; }
          var k = moments.length ? timestampKey(v) : null;
          return k !== null && moments.indexOf(k.join("|")) !== -1;
        }
        return v !== null && typeof v !== "object" && folded.indexOf(v) !== -1;
      };
    }
    if (op === "contains") {
      var needle = String(expected).toLowerCase();
      return function (v) { return (typeof v === "string" && v.toLowerCase().indexOf(needle) !== -1) || v === expected; };
    }
    if (op === "starts-with" || op === "ends-with") {
      var affix = String(expected).toLowerCase();
      return op === "starts-with"
        ? function (v) { return typeof v === "string" && v.toLowerCase().indexOf(affix) === 0; }
        : function (v) { return typeof v === "string" && v.length >= affix.length && v.toLowerCase().slice(v.length - affix.length) === affix; };
    }
    if (op === "matches") {
      var pattern;
      try { pattern = new RegExp(expected); } catch (e) { throw new QueryError("bad regular expression " + JSON.stringify(expected)); }
      return function (v) { return typeof v === "string" && pattern.test(v); };
    }
    var holds = ORDER[op];
    if (typeof expected === "string") {
      var key = timestampKey(expected);
      if (key !== null) { return function (v) { var k = timestampKey(v); return k !== null && holds(compareKeys(k, key)); }; }
      return function (v) { return typeof v === "string" && holds(v < expected ? -1 : v > expected ? 1 : 0); };
    }
    return function (v) { return isNumber(v) && holds(v - expected); };
  }

  function compile(node) {
    if (!node) { return function () { return true; }; }
    if (node.all) { var all = node.all.map(compile); return function (row) { return all.every(function (f) { return f(row); }); }; }
    if (node.any) { var any = node.any.map(compile); return function (row) { return any.some(function (f) { return f(row); }); }; }
    if (node.not) { var inner = compile(node.not); return function (row) { return !inner(row); }; }
    var get = getter(node.field, node.path);
    if (node.op === "exists") { return function (row) { return get(row) !== MISSING; }; }
    if (node.op === "not-exists") { return function (row) { return get(row) === MISSING; }; }
    var each = elementTest(node.op, node.value);
    var hit = function (row) {
      var value = get(row);
      if (value === MISSING) { return false; }
      return Array.isArray(value) ? value.some(each) : each(value);
    };
    // not-equals / not-in hold for a missing property too: it equals nothing.
    return node.op === "not-equals" || node.op === "not-in" ? function (row) { return !hit(row); } : hit;
  }

  window.TiopsQuery = { parse: parse, compile: compile, QueryError: QueryError, getter: getter, MISSING: MISSING };
})();
