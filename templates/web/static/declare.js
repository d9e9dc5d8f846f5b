// The declare form's live count of the affected (served from /static/: no inline scripts, see the CSP).
(function () {
  var form = document.getElementById("declare"), out = document.getElementById("affected");
  function refresh() {
    var q = new URLSearchParams();
    form.querySelectorAll("input[type=checkbox]:checked").forEach(function (box) {
      q.append(box.name === "regions" ? "region" : "service", box.value);
    });
    if (!q.has("region")) { out.textContent = "Affected subscribers: pick a region."; return; }
    fetch("/console/affected?" + q.toString(), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (d) { out.textContent = "Affected subscribers: " + d.affected + " of " + d.active + " active."; });
  }
  form.addEventListener("change", refresh);
})();
