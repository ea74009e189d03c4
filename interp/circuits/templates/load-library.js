(function () {
  var loaded = window.interpViewerLibrary = window.interpViewerLibrary || {};
  if (loaded["$key"]) return;
  var bytes = Uint8Array.from(atob("$library"), function (c) { return c.charCodeAt(0); });
  var code = new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
  loaded["$key"] = code.then(function (text) {
    var script = document.createElement("script");
    script.textContent = text;
    document.head.appendChild(script);
    return window.interpViewer;
  });
})();
