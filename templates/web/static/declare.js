// The declare form's live count of the affected (served from /static/: no inline scripts, see the CSP).
// Its words come from the page (data-words, data-none), in the console user's language.
(function () {
  var form = document.getElementById("declare"), out = document.getElementById("affected");
  function refresh() {
    var q = new URLSearchParams();
    form.querySelectorAll("input[type=checkbox]:checked").forEach(function (box) {
      q.append(box.name === "regions" ? "region" : "service", box.value);
    });
    if (!q.has("region")) { out.textContent = out.dataset.none; return; }
    fetch("/console/affected?" + q.toString(), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (d) {
        out.textContent = out.dataset.words.replace("{affected}", d.affected).replace("{active}", d.active);
      });
  }
  form.addEventListener("change", refresh);
})();
