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
    // base64 text -> Promise of the JSON value it holds.
    inflate: function (text) {
      var bytes;
      if (Uint8Array.fromBase64) { bytes = Uint8Array.fromBase64(text); }  // native, several times faster than atob
      else {
        var binary = atob(text);
        bytes = new Uint8Array(binary.length);
        for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
      }
      var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
      return new Response(stream).json();
    }
  };
})();
