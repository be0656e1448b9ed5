// The report's data files hold their JSON deflated (RFC 1950) and in base64, so that a
// 100k-object report stays small on disk; the browser inflates it natively.
(function () {
  "use strict";
  window.TiopsData = {
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
