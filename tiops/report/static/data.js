// The report's data files hold their JSON deflated (RFC 1950) and in base64, so that a
// 100k-object report stays small on disk; the browser inflates it natively.
(function () {
  "use strict";
  // What tiops/render/names.py printable escapes: C0 and C1 controls and the bidirectional
  // overrides and isolates (Trojan Source: "invoice\u202efdp.exe" would read "invoiceexe.pdf").
  var UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
  function escaped(character) {
    var code = character.charCodeAt(0), hex = code.toString(16);
    return code < 0x100 ? "\\x" + ("0" + hex).slice(-2) : "\\u" + ("000" + hex).slice(-4);
  }
  window.TiopsData = {
    // Text from intel as the CLI prints it, each such character written as its escape (\x1b,
    // \u202e). ``lines``: text shown on several lines keeps its line breaks and tabs.
    printable: function (value, lines) {
      var text = String(value);
      return text.replace(UNPRINTABLE, function (character) {
        return lines && (character === "\n" || character === "\t") ? character : escaped(character);
      });
    },
    // Adds the data file ``src`` (data/index.js, data/objects/<key>.js) as a <script>.
    // ``arrived()`` says whether the file called the page (TiopsReport.index or .shard) as it
    // ran: a file cut short or edited by hand runs with a syntax error and calls nothing, and
    // Chromium still fires "load" for it. ``failed(message)`` then, or when the file is missing,
    // so the page says what is wrong instead of waiting for data that never comes.
    load: function (src, arrived, failed) {
      var tag = document.createElement("script");
      tag.src = src;
      tag.onerror = function () { failed(TiopsData.broken(src, "is missing")); };
      tag.onload = function () { if (!arrived()) { failed(TiopsData.broken(src, "is damaged")); } };
      document.body.appendChild(tag);
    },
    // Whether the data file running now is ``src``: a file put in another's place (a.js
    // holding shard "b") is damaged, and must not pass for that other file's data.
    running: function (src) {
      var current = document.currentScript;
      return current !== null && current.getAttribute("src") === src;
    },
    // Back and forward return to where the analyst was. The object page and the browser are
    // drawn by script from data files that arrive after the page (and the object page draws
    // another object on each change of its #id, in one document), so the browser's own restoring
    // runs before there is anything to scroll to, or not at all. Each page keeps its scroll
    // position in its history entry instead and puts it back itself once drawn (saved()).
    keepScroll: function () {
      if ("scrollRestoration" in history) { history.scrollRestoration = "manual"; }
      var timer = null;
      function save() {
        clearTimeout(timer); timer = null;
        var state = history.state !== null && typeof history.state === "object" ? history.state : {};
        if (state.scroll === window.scrollY) { return; }
        history.replaceState(Object.assign({}, state, { scroll: window.scrollY }), "");
      }
      // At most one save per 150 ms while scrolling (Chromium throttles a page that replaces
      // its history state hundreds of times in a few seconds)...
      window.addEventListener("scroll", function () { if (timer === null) { timer = setTimeout(save, 150); } }, { passive: true });
      // ...and at once before a link leaves this entry, or the last 150 ms of scrolling are lost.
      document.addEventListener("click", function (event) {
        if (event.target instanceof Element && event.target.closest("a")) { save(); }
      }, true);
      window.addEventListener("pagehide", save);
      // A save still pending when back or forward has already changed the entry would write this
      // entry's position into the other one.
      window.addEventListener("popstate", function () { clearTimeout(timer); timer = null; });
      return {
        saved: function () {
          var state = history.state;
          return state !== null && typeof state === "object" && typeof state.scroll === "number" ? state.scroll : null;
        }
      };
    },
    broken: function (src, what) {
      return "The report is incomplete: its data file " + src + " " + what
        + ". Build the report again (tiops report) or copy the whole folder.";
    },
    // base64 text -> Promise of the JSON value it holds. Text that is not base64 rejects the
    // promise too (decoding it throws; inside then() that is a rejection), so a damaged file
    // is one failure to handle, not an exception thrown out of the data file's script.
    inflate: function (packed) {
      return Promise.resolve(packed).then(function (text) {
        var bytes;
        if (Uint8Array.fromBase64) { bytes = Uint8Array.fromBase64(text); }  // native, several times faster than atob
        else {
          var binary = atob(text);
          bytes = new Uint8Array(binary.length);
          for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
        }
        var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
        return new Response(stream).json();
      });
    }
  };
})();
