// The incident page's mailings, refreshed every 2 s from progress.json (no reload; served from
// /static/: no inline scripts, see the CSP). The labels come translated from the server.
(function () {
  var table = document.getElementById("mailings");
  if (!table) { return; }
  var body = table.querySelector("tbody"), done = table.dataset.done;
  function cell(row, value, name) {
    var td = document.createElement("td");
    td.textContent = value;
    if (name) { td.className = name; }
    row.appendChild(td);
  }
  function left(m) {
    if (m.done) { return done; }
    return m.seconds_left === null ? "—" : Math.round(m.seconds_left) + " s";
  }
  function refresh() {
    fetch(table.dataset.url, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var rows = document.createDocumentFragment();
        data.mailings.forEach(function (m) {
          var row = document.createElement("tr");
          cell(row, m.label); cell(row, m.total); cell(row, m.sent, "sent"); cell(row, m.waiting);
          cell(row, m.failed); cell(row, m.cancelled); cell(row, Math.round(m.per_second * 60)); cell(row, left(m));
          rows.appendChild(row);
        });
        body.replaceChildren(rows);
        table.dataset.refreshed = data.at;
      })
      .catch(function () {});
  }
  setInterval(refresh, 2000);
})();
