// Live decisions: new rows arrive over server-sent events, already rendered (and escaped) by
// the server; the page works without this script, reloading shows the latest.
(function () {
  var table = document.getElementById("decisions");
  if (!table || !window.EventSource) { return; }
  var body = table.tBodies[0];
  var status = document.getElementById("live-status");
  var source = new EventSource(table.dataset.stream);
  source.addEventListener("open", function () { status.textContent = "Live: new decisions appear at the top."; });
  source.addEventListener("error", function () { status.textContent = "Live updates paused; retrying."; });
  source.addEventListener("decision", function (e) {
    var empty = document.getElementById("no-decisions");
    if (empty) { empty.remove(); }
    body.insertAdjacentHTML("afterbegin", e.data);
    while (body.rows.length > 200) { body.deleteRow(body.rows.length - 1); }
  });
  // Leaving the page (or its going into the back/forward cache) ends the subscription, so
  // the server stops publishing as soon as nobody looks.
  window.addEventListener("pagehide", function () { source.close(); });
  source.addEventListener("missed", function (e) {
    status.textContent = e.data + " decisions went by too fast to show; reload for the trail's view.";
  });
})();
