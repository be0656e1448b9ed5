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
  // A name from the query (a field, an operator, a POSIX class) looked up in a table: only the
  // table's own entries, never what every object inherits ("constructor", "__proto__", "toString").
  function own(table, name) { return table !== null && table !== undefined && Object.prototype.hasOwnProperty.call(table, name); }
  function lookup(table, name) { return own(table, name) ? table[name] : undefined; }

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
      op = lookup(SYMBOLS, op) || op.toLowerCase();
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
    if (!own(kinds, head) && catalogue.seen.indexOf(head) === -1 && head.indexOf("x_") !== 0) {
      var close = nearest(head, Object.keys(kinds).concat(catalogue.seen));
      throw new QueryError("unknown field '" + head + "'" + (close.length ? "; did you mean " + close.join(" or ") + "?" : ""));
    }
    var rest = node.field.slice(head.length + 1), subfields = lookup(catalogue.subfields, head);
    if (subfields && rest && subfields.indexOf(rest) === -1) {
      var near = nearest(rest, subfields).map(function (name) { return "'" + head + "." + name.slice(1); });
      throw new QueryError("unknown field '" + node.field + "'" + (near.length ? "; did you mean " + near.join(" or ") + "?" : ""));
    }
    // enrichment.* and whois.* read the extension that carries them (catalogue.paths, from tiops/enrich/fields.py).
    if (own(catalogue.paths, head)) { node.path = catalogue.paths[head].concat(node.field.split(".").slice(1)); }
    var kind = lookup(kinds, node.field) || "any";
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
  // Python's str.casefold (full Unicode case folding), as tiops query and the rules compare text:
  // toLowerCase leaves ß, ſ, ς, µ and more alone, so Straße did not equal STRASSE here as it does there.
  // The report's build fills the table from the Python that made it (tiops.report.build.casefold_table):
  // every character that folds to something else. ASCII folds as toLowerCase lowers it.
  var CASEFOLD = {};
  var ASCII_ONLY = /^[\x00-\x7f]*$/;
  // One pass of the engine's own replace over the characters that fold (a loop per character in
  // script was 100 times slower on 100k non-ASCII names).
  var FOLDING = new RegExp("[" + Object.keys(CASEFOLD).map(function (ch) {
    return "\\u{" + ch.codePointAt(0).toString(16) + "}";
  }).join("") + "]", "gu");
  function folded(ch) { return CASEFOLD[ch]; }
  function caseless(text) {
    if (ASCII_ONLY.test(text)) { return text.toLowerCase(); }
    return text.replace(FOLDING, folded);
  }
  function fold(value) { return typeof value === "string" ? caseless(value) : value; }
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
          if (folded.indexOf(caseless(v)) !== -1) { return true; }
          var k = moments.length ? timestampKey(v) : null;
          return k !== null && moments.indexOf(k.join("|")) !== -1;
        }
        return v !== null && typeof v !== "object" && folded.indexOf(v) !== -1;
      };
    }
    if (op === "contains") {
      var needle = caseless(String(expected));
      return function (v) { return (typeof v === "string" && caseless(v).indexOf(needle) !== -1) || v === expected; };
    }
    if (op === "starts-with" || op === "ends-with") {
      var affix = caseless(String(expected));
      return op === "starts-with"
        ? function (v) { return typeof v === "string" && caseless(v).indexOf(affix) === 0; }
        : function (v) {  // the folded text's end: folding may change a text's length (ß is ss)
          if (typeof v !== "string") { return false; }
          var text = caseless(v);
          return text.length >= affix.length && text.slice(text.length - affix.length) === affix;
        };
    }
    if (op === "matches") {
      var pattern = re2RegExp(String(expected));
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

  // --- `matches`: RE2's syntax and meaning on the browser's RegExp ------------------------
  // tiops query searches with RE2 (linear in the text; no backreferences or lookaround). The
  // browser has only RegExp, so a pattern is rewritten into RegExp's syntax with RE2's meaning
  // (\s, ".", POSIX classes, \A, \z, \Q...\E, leading flags, a brace that starts no repetition),
  // refused with RE2's reason where RE2 refuses it, and refused as "not in the browser" where
  // RegExp has nothing the same (docs/query.md). RE2 syntax: github.com/google/re2/wiki/Syntax.
  function Re2Refusal(reason) { this.reason = reason; }
  function BrowserCannot(reason) { this.reason = reason; }
  // The first thing the browser cannot run, kept while the rest of the pattern is read: RE2 may
  // refuse the pattern further on, and its refusal is the one to give.
  var cannot = null;
  function browserCannot(reason) { if (cannot === null) { cannot = new BrowserCannot(reason); } }
  var PERL_SPACE = "\\t\\n\\f\\r ";  // RE2's \s: no \v and no Unicode spaces, unlike RegExp's
  var POSIX = { alnum: "0-9A-Za-z", alpha: "A-Za-z", ascii: "\\x00-\\x7f", blank: "\\t ", cntrl: "\\x00-\\x1f\\x7f",
    digit: "0-9", graph: "!-~", lower: "a-z", print: " -~", punct: "!-\\/:-@\\[-`{-~", space: "\\t\\n\\v\\f\\r ",
    upper: "A-Z", word: "0-9A-Za-z_", xdigit: "0-9A-Fa-f" };
  var MAX_REPEAT = 1000;  // RE2's limit on {n,m}
  // What an empty-width assertion (^, $, \b, \A, \z) is as an atom: RE2 lets it repeat, RegExp's
  // "u" mode does not. Repeated at least once it is itself; possibly never, it holds anywhere.
  var ASSERTION = "assertion";
  var KEEP = "keep";  // an atom that is nothing (\Q\E): whether what follows may repeat stays as it was

  function re2RegExp(source) {
    try {
      var translated = re2ToRegExp(source);
      return new RegExp(translated.source, translated.flags);
    } catch (e) {
      if (e instanceof Re2Refusal) {
        throw new QueryError("bad regular expression " + JSON.stringify(source) + ": " + e.reason +
                             " (RE2 syntax: no backreferences or lookaround)");
      }
      if (e instanceof BrowserCannot || e instanceof SyntaxError) {
        throw new QueryError("the browser cannot run the regular expression " + JSON.stringify(source) + ": " +
                             (e instanceof BrowserCannot ? e.reason : e.message) + "; tiops query can");
      }
      throw e;
    }
  }

  // A character as RegExp's "u" mode reads it literally, in a class or out of one.
  function literal(character) {
    if (/^[A-Za-z0-9_]$/.test(character)) { return character; }
    var code = character.codePointAt(0);
    return code < 0x80 ? "\\x" + (code < 16 ? "0" : "") + code.toString(16) : "\\u{" + code.toString(16) + "}";
  }

  // RE2's names for \p{...}: the general categories (no Cn or LC), Any, and these scripts
  // (Unicode 15.0's long names, as the google-re2 tiops runs knows them).
  var RE2_CATEGORIES = ("C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So " +
    "Z Zl Zp Zs").split(" ");
  var RE2_SCRIPTS = ("Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali " +
    "Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee " +
    "Chorasmian Common Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan " +
    "Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi " +
    "Gurmukhi Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inherited Inscriptional_Pahlavi " +
    "Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki " +
    "Khudawadi Lao Latin Lepcha Limbu Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean Marchen " +
    "Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mongolian Mro " +
    "Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki " +
    "Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic " +
    "Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic " +
    "Samaritan Saurashtra Sharada Shavian Siddham Sinhala Sogdian Sora_Sompeng Soyombo Sundanese Syloti_Nagri Syriac " +
    "Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangsa Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta " +
    "Toto Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square").split(" ");
  // RE2's \pC is Cc, Cf, Co and Cs; RegExp's also takes every unassigned code point (Cn).
  var RE2_OTHER = "\\p{Cc}\\p{Cf}\\p{Co}\\p{Cs}";
  var caseBlind = false;  // the pattern being rewritten folds case: set by re2ToRegExp

  // RE2's \pL / \p{Greek} / \p{^Greek} in RegExp's syntax; ``inClass``: the text goes inside [...].
  function propertyClass(negated, name, inClass) {
    if (RE2_CATEGORIES.indexOf(name) === -1 && RE2_SCRIPTS.indexOf(name) === -1 && name !== "Any") {
      throw new Re2Refusal("invalid character class range: \\p{" + name + "}");
    }
    if (negated && caseBlind) {
      // Case-blind, RE2 folds the class before negating it, RegExp after: the answers differ.
      browserCannot("a negated \\P class with (?i)");
    }
    if (name === "C") {
      if (!negated) { return inClass ? RE2_OTHER : "[" + RE2_OTHER + "]"; }
      if (inClass) { browserCannot("\\PC inside a class"); return ""; }
      return "[^" + RE2_OTHER + "]";
    }
    var inner = RE2_CATEGORIES.indexOf(name) !== -1 || name === "Any" ? name : "Script=" + name;
    return (negated ? "\\P{" : "\\p{") + inner + "}";
  }

  // One escape at source[at] ("\\"): {text, next, atom, code}; ``code``: the one character it
  // stands for (a range's end may be one), null for a class such as \d or \pL.
  function escapeAt(source, at, inClass) {
    var x = source[at + 1], m, code;
    if (x === undefined) { throw new Re2Refusal("trailing \\"); }
    if (/[0-9]/.test(x)) {
      m = /^(?:0[0-7]{0,2}|[1-7][0-7]{1,2})/.exec(source.slice(at + 1));
      if (!m) { throw new Re2Refusal("invalid escape sequence: \\" + x); }  // \1 is a backreference
      code = parseInt(m[0], 8);
      return { text: literal(String.fromCodePoint(code)), next: at + 1 + m[0].length, atom: true, code: code };
    }
    var controls = { f: 12, n: 10, r: 13, t: 9, v: 11, a: 7 };
    if (own(controls, x)) { return { text: literal(String.fromCodePoint(controls[x])), next: at + 2, atom: true, code: controls[x] }; }
    if ("dDwW".indexOf(x) !== -1) { return { text: "\\" + x, next: at + 2, atom: true, code: null }; }
    if (x === "s") { return { text: inClass ? PERL_SPACE : "[" + PERL_SPACE + "]", next: at + 2, atom: true, code: null }; }
    if (x === "S") {
      if (inClass) { browserCannot("\\S inside a class"); return { text: "", next: at + 2, atom: true, code: null }; }
      return { text: "[^" + PERL_SPACE + "]", next: at + 2, atom: true, code: null };
    }
    if (!inClass && x === "B") {
      browserCannot("\\B, which RE2 also finds between the bytes of a character");
      return { text: "(?:)", next: at + 2, atom: ASSERTION, code: null };
    }
    if (!inClass && x === "b") { return { text: "\\b", next: at + 2, atom: ASSERTION, code: null }; }
    // "^" and "$": the pattern never runs with RegExp's "m" flag (the anchors are written out), so
    // these are the start and the end of the text. A lookbehind ((?<![^])) was the first way: V8
    // (Chromium 150) also finds it between the two halves of a surrogate pair, so "\A\z" matched "😀".
    if (!inClass && x === "A") { return { text: "^", next: at + 2, atom: ASSERTION, code: null }; }
    if (!inClass && x === "z") { return { text: "$", next: at + 2, atom: ASSERTION, code: null }; }
    if (x === "x") {
      m = /^x(?:\{([0-9A-Fa-f]+)\}|([0-9A-Fa-f]{2}))/.exec(source.slice(at + 1));
      code = m ? parseInt(m[1] || m[2], 16) : NaN;
      if (!m || !(code <= 0x10ffff)) { throw new Re2Refusal("invalid escape sequence: \\x"); }
      return { text: literal(String.fromCodePoint(code)), next: at + 1 + m[0].length, atom: true, code: code };
    }
    if (x === "p" || x === "P") {
      m = /^[pP](?:\{(\^?)([A-Za-z_]+)\}|([A-Za-z]))/.exec(source.slice(at + 1));
      if (!m) { throw new Re2Refusal("invalid character class range: \\" + x); }
      return { text: propertyClass((x === "P") !== (m[1] === "^"), m[2] || m[3], inClass), next: at + 1 + m[0].length,
               atom: true, code: null };
    }
    if (!inClass && x === "Q") {
      var end = source.indexOf("\\E", at + 2), quoted = source.slice(at + 2, end === -1 ? source.length : end);
      // An empty \Q\E is nothing: what follows applies to what came before it (RE2).
      return { text: Array.from(quoted).map(literal).join(""), next: end === -1 ? source.length : end + 2,
               atom: quoted.length > 0 ? true : KEEP, code: null };
    }
    if (x === "C") { browserCannot("\\C (any byte)"); return { text: "[^]", next: at + 2, atom: true, code: null }; }
    if (/[A-Za-z]/.test(x) || x.charCodeAt(0) >= 0x80) { throw new Re2Refusal("invalid escape sequence: \\" + x); }
    return { text: literal(x), next: at + 2, atom: true, code: x.charCodeAt(0) };  // escaped punctuation is itself
  }

  // One member of a bracketed class at source[i]: {text, next, code} (code null: a class, not one character).
  function classMember(source, i, rangeEnd) {
    // RE2 reads "[:" as a POSIX class up to the next ":]" wherever it is, and refuses a name it does not know.
    var close = rangeEnd || source.slice(i, i + 2) !== "[:" ? -1 : source.indexOf(":]", i + 2);
    if (close !== -1) {
      var whole = source.slice(i, close + 2), name = source.slice(i + 2, close), negated = name[0] === "^";
      if (!own(POSIX, negated ? name.slice(1) : name) || name === "^") {
        throw new Re2Refusal("invalid character class range: " + whole);
      }
      if (negated) { browserCannot("a negated POSIX class inside a class, " + whole); return { text: "", next: close + 2, code: null }; }
      return { text: POSIX[name], next: close + 2, code: null };
    }
    if (source[i] === "\\") { var e = escapeAt(source, i, true); return { text: e.text, next: e.next, code: e.code }; }
    var code = source.codePointAt(i), character = String.fromCodePoint(code);
    return { text: literal(character), next: i + character.length, code: code };
  }

  // A bracketed class at source[at] ("["): {text, next}.
  function classAt(source, at) {
    var i = at + 1, text = "[";
    if (source[i] === "^") { text += "^"; i++; }
    var first = true;
    while (true) {
      if (i >= source.length) { throw new Re2Refusal("missing ]: " + source.slice(at)); }
      if (source[i] === "]" && !first) { return { text: text + "]", next: i + 1 }; }
      first = false;
      var start = i, member = classMember(source, i, false);
      i = member.next;
      // After a class such as \s or [:word:] a "-" starts the next member, as RE2 reads it.
      if (member.code !== null && source[i] === "-" && i + 1 < source.length && source[i + 1] !== "]") {
        var last = classMember(source, i + 1, true);  // a range ends at one character: "[" is itself there
        if (last.code === null || last.code < member.code) {
          throw new Re2Refusal("invalid character class range: " + source.slice(start, last.next));
        }
        text += member.text + "-" + last.text; i = last.next; continue;
      }
      text += member.text;
    }
  }

  function re2ToRegExp(source) {
    var out = "", flags = "u", ungreedy = false, depth = 0, canRepeat = false, i = 0, m, assertionAt = 0;
    cannot = null;
    var lead = /^\(\?([imsU]+)\)/.exec(source);  // flags for the whole pattern
    if (lead) {
      lead[1].split("").forEach(function (f) { if (f === "U") { ungreedy = true; } else if (flags.indexOf(f) === -1) { flags += f; } });
      i = lead[0].length;
    }
    var dotAll = flags.indexOf("s") !== -1, multiLine = flags.indexOf("m") !== -1;
    var caseless = flags.indexOf("i") !== -1 || /\(\?[imsU]*i/.test(source);
    caseBlind = caseless;
    flags = flags.replace("s", "").replace("m", "");  // "." and the anchors are written out below
    // RE2 refuses a pattern whose counted repetitions, nested, repeat more than 1000 times
    // ((a{100}){100}): each open group's largest product so far, and the last atom's.
    var products = [1], lastProduct = 1;
    while (i < source.length) {
      var c = source[i];
      if (c === "\\") {
        var e = escapeAt(source, i, false), text = e.text;
        i = e.next;
        if (e.atom === KEEP) { continue; }
        // Case-blind, RegExp's \b takes U+017F and the Kelvin sign for word characters; RE2's stays ASCII.
        if (caseless && text === "\\b") { text = "(?-i:\\b)"; }
        assertionAt = out.length; out += text; canRepeat = e.atom; lastProduct = 1; continue;
      }
      if (c === "[") { var k = classAt(source, i); out += k.text; i = k.next; canRepeat = true; lastProduct = 1; continue; }
      if (c === "(") {
        var rest = source.slice(i + 2);
        if (source[i + 1] !== "?") { out += "("; i++; }
        else if (rest[0] === ":") { out += "(?:"; i += 3; }
        else if ((m = /^P?<([^>]*)>/.exec(rest)) && (rest[0] === "P" || !/^[=!]/.test(m[1]))) {
          // A name changes nothing a search finds (RE2 has no backreferences): RE2's word-character
          // names, a digit first or twice over, need no RegExp group name.
          if (!/^[\p{L}\p{N}_]+$/u.test(m[1])) { throw new Re2Refusal("invalid named capture group: (?" + m[0]); }
          out += "(?:"; i += 2 + m[0].length;
        } else if ((m = /^([imsU]*)(-([imsU]*))?([:)])/.exec(rest)) && !(m[2] && !m[3])) {
          if (m[4] === ")") {
            // (?) sets nothing; other flags mid-pattern RegExp cannot set. Either way a repetition
            // after it repeats what came before (RE2 refuses only operators written side by side).
            if (m[0] !== ")") {
              browserCannot("flags set inside the pattern, (?" + m[0] + "; write them at its start, or as (?i:...)");
            }
            i += 2 + m[0].length; canRepeat = out !== "" && canRepeat !== ASSERTION ? true : canRepeat; continue;
          }
          var written = m[0];
          if (/[msU]/.test(written)) { browserCannot("the flags of (?" + written + " on a group (only i is)"); written = ":"; }
          out += "(?" + written; i += 2 + m[0].length;
        } else {
          var operator = "(?" + (rest[0] || "") + (rest[0] === "<" && (rest[1] === "=" || rest[1] === "!") ? rest[1] : "");
          throw new Re2Refusal("invalid perl operator: " + operator);
        }
        depth++; canRepeat = false; products.push(1); continue;
      }
      if (c === ")") {
        if (depth === 0) { throw new Re2Refusal("unexpected ): " + source); }
        depth--; out += ")"; i++; canRepeat = true;
        lastProduct = products.pop();
        products[products.length - 1] = Math.max(products[products.length - 1], lastProduct);
        continue;
      }
      var repeat = null;
      if (c === "*" || c === "+" || c === "?") { repeat = c; }
      else if (c === "{" && (m = /^\{(\d+)(?:,(\d*))?\}/.exec(source.slice(i)))) {
        if (+m[1] > MAX_REPEAT || (m[2] && +m[2] > MAX_REPEAT) || (m[2] && +m[2] < +m[1])) {
          throw new Re2Refusal("invalid repetition size: " + m[0]);
        }
        repeat = m[0];
      }
      if (repeat !== null) {
        if (!canRepeat) { throw new Re2Refusal((out === "" || /[|(]$/.test(out) ? "missing argument to repetition operator: " : "bad repetition operator: ") + repeat); }
        i += repeat.length;
        var lazy = source[i] === "?";
        if (lazy) { i++; }
        if (repeat[0] === "{") {
          var counted = lastProduct * Math.max(+repeat.slice(1).split(/[,}]/)[0], +(repeat.split(",")[1] || "").replace("}", "") || 0);
          if (counted > MAX_REPEAT) { throw new Re2Refusal("invalid repetition size: " + repeat); }
          products[products.length - 1] = Math.max(products[products.length - 1], counted);
        }
        if (canRepeat === ASSERTION) {
          var least = repeat === "+" ? 1 : repeat[0] === "{" ? +repeat.slice(1).split(/[,}]/)[0] : 0;
          if (least === 0) { out = out.slice(0, assertionAt) + "(?:)"; }
        } else {
          out += repeat + (lazy !== ungreedy ? "?" : "");
        }
        canRepeat = false; continue;
      }
      lastProduct = 1;
      if (c === "{" || c === "}" || c === "]") { out += literal(c); i++; canRepeat = true; continue; }  // no repetition: itself
      if (c === "|") { out += "|"; i++; canRepeat = false; continue; }
      if (c === "^" || c === "$") {
        // With (?m) RE2's lines end at \n only; RegExp's "m" also ends them at \r, U+2028 and U+2029.
        assertionAt = out.length;
        out += !multiLine ? c : c === "^" ? "(?:^|(?<=\\n))" : "(?:$|(?=\\n))";
        i++; canRepeat = ASSERTION; continue;
      }
      if (c === ".") { out += dotAll ? "[^]" : "[^\\n]"; i++; canRepeat = true; continue; }  // RE2's "." stops at \n only
      var character = String.fromCodePoint(source.codePointAt(i));
      out += literal(character); i += character.length; canRepeat = true;
    }
    if (depth > 0) { throw new Re2Refusal("missing ): " + source); }
    if (cannot !== null) { throw cannot; }
    return { source: out, flags: flags };
  }

  // --- One host, however written (tiops/query/keys.py) -----------------------------------
  // observable = V also holds for an observable that is the same address or name written
  // another way: both have the same key, the text tiops.enrich.values.canonical_value gives
  // (RFC 5952 text for IPv6, a /32 or /128 block as its address, an IPv4-mapped address as the
  // IPv4 one, a name in lower case without the root's dot, in A-labels). A wildcard has no key.
  // tests/query/test_keys.py runs this function and the Python one over the same values.
  function ipv4Number(text) {  // a.b.c.d, decimal, no leading zeros (inet_pton, ipaddress)
    var parts = text.split(".");
    if (parts.length !== 4) { return null; }
    var number = 0;
    for (var i = 0; i < 4; i++) {
      if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i]) || +parts[i] > 255) { return null; }
      number = number * 256 + +parts[i];
    }
    return number;
  }
  function ipv6Groups(text) {  // eight 16-bit groups, as Python's ipaddress reads them, or null
    var parts = text.split(":");
    if (parts.length < 3) { return null; }
    var tail = [];
    if (parts[parts.length - 1].indexOf(".") !== -1) {
      var four = ipv4Number(parts.pop());
      if (four === null) { return null; }
      tail = [Math.floor(four / 65536), four % 65536];
      parts.push("0", "0");  // counted as two groups; filled in below
    }
    if (parts.length > 9) { return null; }
    var skip = -1;
    for (var i = 1; i < parts.length - 1; i++) {
      if (parts[i] === "") { if (skip !== -1) { return null; } skip = i; }
    }
    var high, low;
    if (skip !== -1) {
      high = skip; low = parts.length - skip - 1;
      if (parts[0] === "") { high -= 1; if (high) { return null; } }
      if (parts[parts.length - 1] === "") { low -= 1; if (low) { return null; } }
      if (8 - (high + low) < 1) { return null; }
    } else {
      if (parts.length !== 8 || parts[0] === "" || parts[parts.length - 1] === "") { return null; }
      high = 8; low = 0;
    }
    var groups = [];
    function hextet(part) { return /^[0-9A-Fa-f]{1,4}$/.test(part) ? parseInt(part, 16) : null; }
    for (i = 0; i < high; i++) { groups.push(hextet(parts[i])); }
    for (i = 0; i < 8 - high - low; i++) { groups.push(0); }
    for (i = parts.length - low; i < parts.length; i++) { groups.push(hextet(parts[i])); }
    if (groups.indexOf(null) !== -1) { return null; }
    if (tail.length) { groups[6] = tail[0]; groups[7] = tail[1]; }
    return groups;
  }
  function ipv4Text(number) {
    return [number >>> 24, (number >>> 16) & 255, (number >>> 8) & 255, number & 255].join(".");
  }
  function ipv6Text(groups) {  // RFC 5952 section 4: the first longest run of two or more zeros as ::
    var best = -1, bestLength = 1, start = -1;
    for (var i = 0; i <= 8; i++) {
      if (i < 8 && groups[i] === 0) { if (start === -1) { start = i; } continue; }
      if (start !== -1 && i - start > bestLength) { best = start; bestLength = i - start; }
      start = -1;
    }
    var hex = groups.map(function (g) { return g.toString(16); });
    if (best === -1) { return hex.join(":"); }
    return hex.slice(0, best).join(":") + "::" + hex.slice(best + bestLength).join(":");
  }
  function isMapped(groups) {  // ::ffff:0:0/96, RFC 4291 section 2.5.5.2
    return groups.slice(0, 5).every(function (g) { return g === 0; }) && groups[5] === 0xffff;
  }
  // A netmask, else a hostmask, written as an IPv4 address (ipaddress reads "8.8.8.0/255.255.255.0"
  // as 8.8.8.0/24): its prefix length, or null when it is neither.
  function maskPrefix(mask) {
    var candidates = [(~mask >>> 0) + 1, mask + 1];  // 2 ** (32 - prefix) for a netmask, then a hostmask
    for (var i = 0; i < 2; i++) {
      var bits = Math.log2(candidates[i]);
      if (Number.isInteger(bits)) { return 32 - bits; }
    }
    return null;
  }
  function ipKey(text) {  // tiops.enrich.values._ip_value
    text = text.trim();
    var slash = text.indexOf("/");
    var address = slash === -1 ? text : text.slice(0, slash), prefix = slash === -1 ? null : text.slice(slash + 1);
    if (prefix !== null && prefix.indexOf("/") !== -1) { return null; }
    var v6 = address.indexOf(":") !== -1, length;
    if (!v6) {
      var number = ipv4Number(address);
      if (number === null) { return null; }
      if (prefix === null) { return ipv4Text(number); }
      if (/^[0-9]+$/.test(prefix)) { length = +prefix; }
      else { var mask = ipv4Number(prefix); length = mask === null ? null : maskPrefix(mask); }
      if (length === null || length > 32) { return null; }
      var network = length === 0 ? 0 : (number - number % Math.pow(2, 32 - length));
      return length === 32 ? ipv4Text(network) : ipv4Text(network) + "/" + length;
    }
    var groups = ipv6Groups(address);
    if (groups === null) { return null; }
    if (prefix === null) {
      length = 128;
    } else {
      if (!/^[0-9]+$/.test(prefix) || +prefix > 128) { return null; }
      length = +prefix;
    }
    for (var i = 0; i < 8; i++) {  // the network: host bits cleared (strict=False)
      var kept = Math.max(0, Math.min(16, length - 16 * i));
      groups[i] = kept === 0 ? 0 : groups[i] - groups[i] % Math.pow(2, 16 - kept);
    }
    if (length >= 96 && isMapped(groups)) {
      var four = groups[6] * 65536 + groups[7];
      return length === 128 ? ipv4Text(four) : ipv4Text(four) + "/" + (length - 96);
    }
    return length === 128 ? ipv6Text(groups) : ipv6Text(groups) + "/" + length;
  }
  // Each label that is not ASCII as its A-label (RFC 5890 section 2.3.2.1), by the browser's own
  // host parser (UTS 46, nontransitional, as tiops.enrich.values._a_labels asks of the idna
  // package); a name it cannot read, or that holds what URLs read around a host, stays as written.
  function aLabels(name) {
    if (/[\x00-\x20#%\/:<>?@\[\\\]^|]/.test(name)) { return name; }
    // IDNA 2008 (RFC 5892) allows letters, marks and digits (format characters such as a soft
    // hyphen UTS 46 drops first); UTS 46 alone also symbols and punctuation (an emoji), which the
    // idna package refuses, keeping the name as written: so does the browser.
    if (/[^\x00-\x7f\p{L}\p{M}\p{N}\p{Cf}\u3002\uff0e\uff61]/u.test(name)) { return name; }
    try {
      var host = new URL("http://" + name + "/").hostname;
      return /^[\x21-\x7e]*$/.test(host) ? host : name;
    } catch (error) { return name; }
  }
  function domainKey(value) {  // tiops.enrich.values._domain
    var name = value.trim().toLowerCase();
    if (/[^\x00-\x7f]/.test(name)) { name = aLabels(name); }
    if (name.slice(-1) === ".") { name = name.slice(0, -1); }
    while (name.indexOf("*.") === 0 || name.indexOf(".") === 0) { name = name.slice(name.indexOf("*.") === 0 ? 2 : 1); }
    if (!name || name.indexOf(".") === -1 || name.indexOf("..") !== -1 || name.slice(-1) === "." || /[ \/:@\[\]]/.test(name)) { return null; }
    if (name.length > 253 || name.split(".").some(function (label) { return label.length > 63; })) { return null; }
    return name;
  }
  var hostKeys = new Map();
  function hostKey(value) {
    if (typeof value !== "string") { return null; }
    var known = hostKeys.get(value);
    if (known !== undefined) { return known; }
    var key = null, bare = value.trim();
    if (bare[0] !== "*" && bare[0] !== ".") {
      if (value.indexOf(":") !== -1 || value.indexOf("/") !== -1 || /^[0-9]+$/.test(value.replace(/\./g, ""))) { key = ipKey(value); }
      if (key === null) { key = domainKey(value); }
    }
    if (hostKeys.size < 65536) { hostKeys.set(value, key); }
    return key;
  }
  // observable = V (or in, !=, not-in): a value equal to V or to V's key, or whose own key is V's key.
  function observableTest(node) {
    var values = Array.isArray(node.value) ? node.value : [node.value];
    var keys = values.map(hostKey).filter(function (k, i, all) { return k !== null && all.indexOf(k) === i; });
    if (!keys.length) { return null; }
    var each = elementTest("in", values.concat(keys)), get = getter("observable");
    var hit = function (row) {
      var found = get(row);
      if (found === MISSING) { return false; }
      found = Array.isArray(found) ? found : [found];
      return found.some(function (v) { return each(v) || keys.indexOf(hostKey(v)) !== -1; });
    };
    return node.op === "not-equals" || node.op === "not-in" ? function (row) { return !hit(row); } : hit;
  }

  function compile(node) {
    if (!node) { return function () { return true; }; }
    if (node.all) { var all = node.all.map(compile); return function (row) { return all.every(function (f) { return f(row); }); }; }
    if (node.any) { var any = node.any.map(compile); return function (row) { return any.some(function (f) { return f(row); }); }; }
    if (node.not) { var inner = compile(node.not); return function (row) { return !inner(row); }; }
    if (node.field === "observable" && !node.path && ["equals", "not-equals", "in", "not-in"].indexOf(node.op) !== -1) {
      var keyed = observableTest(node);
      if (keyed !== null) { return keyed; }
    }
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

  window.TiopsQuery = { parse: parse, compile: compile, QueryError: QueryError, getter: getter, MISSING: MISSING,
                        re2RegExp: re2RegExp, hostKey: hostKey, caseless: caseless };
})();
