#include "page_assets.h"

namespace qmeter::report::detail {

const char* const kContentSecurityPolicy =
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'";

const char* const kEarlyScript = R"js(
window.qmeterCheck = {status: "running", errors: [], warnings: [], csp_violations: [], charts: {}};
(function () {
  var check = window.qmeterCheck;
  function text(args) {
    return Array.prototype.map.call(args, function (a) {
      if (a instanceof Error) return a.name + ": " + a.message;
      if (typeof a === "object") { try { return JSON.stringify(a); } catch (e) { return String(a); } }
      return String(a);
    }).join(" ");
  }
  var origError = console.error, origWarn = console.warn;
  console.error = function () { check.errors.push("console.error: " + text(arguments)); return origError.apply(console, arguments); };
  console.warn = function () { check.warnings.push("console.warn: " + text(arguments)); return origWarn.apply(console, arguments); };
  window.addEventListener("error", function (e) {
    if (e.target && e.target !== window) {
      check.errors.push("resource failed: <" + (e.target.tagName || "?").toLowerCase() + "> " + (e.target.src || e.target.href || ""));
    } else {
      check.errors.push("uncaught: " + e.message + " at " + e.filename + ":" + e.lineno);
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) { check.errors.push("unhandled rejection: " + text([e.reason])); });
  document.addEventListener("securitypolicyviolation", function (e) {
    check.csp_violations.push(e.violatedDirective + " blocked " + (e.blockedURI || "(inline)"));
  });
})();
)js";

const char* const kPageScript = R"js(
(function () {
  var check = window.qmeterCheck;
  var report = JSON.parse(document.getElementById("qmeter-report").textContent);

  // ---- the sortable table and its CSV download -------------------------------------------------
  var table = report.table, sortKey = null, sortAsc = true;
  function cell(v) { return v === null || v === undefined ? "" : String(v); }
  function compare(a, b, numeric) {
    var ea = a === null || a === undefined || a === "", eb = b === null || b === undefined || b === "";
    if (ea || eb) return ea === eb ? 0 : (ea ? 1 : -1);  // empty cells last in either order
    if (numeric) return (sortAsc ? 1 : -1) * (a - b);
    return (sortAsc ? 1 : -1) * String(a).localeCompare(String(b));
  }
  function renderTable() {
    var el = document.getElementById("runs-table");
    var head = "<thead><tr>" + table.columns.map(function (c) {
      var mark = c.key === sortKey ? (sortAsc ? " \u25b2" : " \u25bc") : "";
      return "<th data-key=\"" + c.key + "\" title=\"sort by " + c.label + "\">" + escapeHtml(c.label) + mark + "</th>";
    }).join("") + "</tr></thead>";
    var body = "<tbody>" + table.rows.map(function (r) {
      return "<tr>" + table.columns.map(function (c) {
        return "<td" + (c.numeric ? " class=\"num\"" : "") + ">" + escapeHtml(cell(r[c.key])) + "</td>";
      }).join("") + "</tr>";
    }).join("") + "</tbody>";
    el.innerHTML = head + body;
    Array.prototype.forEach.call(el.querySelectorAll("th"), function (th) {
      th.addEventListener("click", function () { sortBy(th.getAttribute("data-key")); });
    });
  }
  function sortBy(key) {
    if (sortKey === key) { sortAsc = !sortAsc; } else { sortKey = key; sortAsc = true; }
    var col = table.columns.filter(function (c) { return c.key === key; })[0];
    table.rows.sort(function (a, b) { return compare(a[key], b[key], col && col.numeric); });
    renderTable();
  }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (ch) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[ch];
    });
  }
  function csvField(v) {
    var s = cell(v);
    return /[",\r\n]/.test(s) ? "\"" + s.replace(/"/g, "\"\"") + "\"" : s;
  }
  function tableCsv() {
    var lines = [table.columns.map(function (c) { return csvField(c.key); }).join(",")];
    table.rows.forEach(function (r) { lines.push(table.columns.map(function (c) { return csvField(r[c.key]); }).join(",")); });
    return lines.join("\r\n") + "\r\n";
  }
  window.qmeterTableCsv = tableCsv;
  window.qmeterSortTable = sortBy;
  document.getElementById("csv-download").addEventListener("click", function () {
    this.href = "data:text/csv;charset=utf-8," + encodeURIComponent(tableCsv());
  });
  renderTable();

  // ---- the charts --------------------------------------------------------------------------------
  var options = {renderer: "svg", actions: {export: true, source: false, compiled: false, editor: false}};
  var pending = report.charts.map(function (chart) {
    check.charts[chart.id] = {rendered: false, marks: 0};
    return vegaEmbed("#chart-" + chart.id, chart.spec, options).then(function () {}, function (err) {
      check.charts[chart.id].error = String(err && err.message || err);
      check.errors.push("chart " + chart.id + ": " + check.charts[chart.id].error);
    });
  });
  // The check waits for the charts, for the whole document (anything after this script) and one
  // more turn of the event loop (policy violations are reported asynchronously).
  var loaded = new Promise(function (resolve) {
    if (document.readyState === "complete") resolve(); else window.addEventListener("load", resolve);
  });
  Promise.all([Promise.all(pending), loaded]).then(function () {
    return new Promise(function (resolve) { setTimeout(resolve, 50); });
  }).then(function () {
    // A chart counts as rendered when its container holds an SVG with a size and at least one
    // drawn mark (a path, line, rect or text of a data mark), not just axes.
    report.charts.forEach(function (chart) {
      var box = document.getElementById("chart-" + chart.id);
      var svg = box && box.querySelector("svg");
      var entry = check.charts[chart.id];
      if (!svg) return;
      var r = svg.getBoundingClientRect();
      entry.width = Math.round(r.width);
      entry.height = Math.round(r.height);
      entry.marks = svg.querySelectorAll("g.role-mark > path, g.role-mark > line, g.role-mark > rect, g.role-mark > text").length;
      entry.rendered = r.width > 0 && r.height > 0 && entry.marks > 0;
    });
    var table_el = document.getElementById("runs-table");
    check.table_rows = table_el ? table_el.querySelectorAll("tbody tr").length : 0;
    check.charts_expected = report.charts.length;
    var ok = check.errors.length === 0 && check.csp_violations.length === 0 &&
             report.charts.every(function (c) { return check.charts[c.id].rendered; });
    check.status = ok ? "ok" : "failed";
    document.getElementById("qmeter-selfcheck").textContent = JSON.stringify(check);
    document.title = document.title.replace(/ \[selfcheck: .*\]$/, "") + " [selfcheck: " + check.status + "]";
  });
})();
)js";

const char* const kStyle = R"css(
body { font-family: system-ui, sans-serif; margin: 0 2em 4em 2em; color: #222; max-width: 1500px; }
h1 { margin-bottom: 0.2em; }
nav a { margin-right: 1em; }
section { border-top: 1px solid #ddd; margin-top: 1.5em; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
.chart { min-width: 300px; }
.missing { color: #8a5300; background: #fff6e5; padding: 0.5em 1em 0.5em 2em; border-radius: 4px; }
.warnings li { color: #a00; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; max-height: 30em; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 2px 6px; }
th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.kv td:first-child { font-weight: 600; }
.table-wrap { max-height: 40em; overflow: auto; }
)css";

}  // namespace qmeter::report::detail
