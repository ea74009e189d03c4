(function () {
  var element = document.getElementById("$element"), tries = 0;
  function say(text) { var p = element.querySelector(".iv-fallback"); if (p) p.textContent = text; }
  function start() {
    var library = (window.interpViewerLibrary || {})["$key"];
    if (!library) {
      if (++tries < 60) { setTimeout(start, 50); return; }
      say($missing);
      return;
    }
    library.then(function (viewer) { return viewer.mount(element, "$payload"); })
      .catch(function (err) { say("The graph viewer failed: " + err); console.error(err); });
  }
  start();
})();
