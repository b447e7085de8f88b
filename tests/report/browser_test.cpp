// The report in a real headless Chromium (Debian's `chromium`): the page must render every chart as
// a non-empty SVG with no console error and no network request, its table must sort and export
// CSV, and empty or partial studies must give valid pages. The page writes a self-check JSON into
// <pre id="qmeter-selfcheck">; the tests read it from the DOM Chromium dumps, check the dumped
// SVGs themselves, and prove with injected faults that the self-check fails when it should.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/store/store.h"
#include "report_fixture.h"
#include "test_support.h"

using namespace qmeter;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string chromium_path() {
  const char* env = std::getenv("QMETER_CHROMIUM");
  return env && *env ? env : "/usr/bin/chromium";
}

#define REQUIRE_CHROMIUM()                                                                                     \
  ASSERT_TRUE(fs::exists(chromium_path()))                                                                     \
      << "chromium not found at " << chromium_path()                                                           \
      << ": install Debian's `chromium` package (scripts/setup.sh installs it) or set QMETER_CHROMIUM"

struct Browser {
  int status = -1;
  std::string dom;     // --dump-dom output
  std::string log;     // Chromium's stderr
};

// One headless Chromium run with a fresh profile; stdout and stderr go to separate files.
Browser run_chromium(const std::string& dir, const std::string& tag, std::vector<std::string> args) {
  const std::string profile = dir + "/profile-" + tag;
  fs::remove_all(profile);
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" >\"$QMETER_OUT\" 2>\"$QMETER_ERR\"", chromium_path(),
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--virtual-time-budget=30000"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env = {{"QMETER_OUT", dir + "/" + tag + ".dom.html"}, {"QMETER_ERR", dir + "/" + tag + ".stderr.txt"}};
  auto p = ChildProcess::spawn(o);
  Browser b;
  auto st = p.wait(120);
  if (!st) {
    p.stop(2);
    ADD_FAILURE() << "chromium did not finish within 120 s (" << tag << ")";
  }
  b.status = st.value_or(-1);
  fs::remove_all(profile);
  b.dom = read_file(dir + "/" + tag + ".dom.html");
  b.log = read_file(dir + "/" + tag + ".stderr.txt");
  return b;
}

Browser dump_dom(const std::string& dir, const std::string& tag, const std::string& html) {
  return run_chromium(dir, tag, {"--window-size=1400,3000", "--dump-dom", "file://" + fs::absolute(html).string()});
}

std::string unescape_text(std::string s) {
  for (auto [from, to] : {std::pair<std::string, std::string>{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
                          {"&amp;", "&"}}) {
    for (auto p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  }
  return s;
}

// The text of the element with this id in the dumped DOM (a <pre>, no nested markup).
std::string element_text(const std::string& dom, const std::string& id) {
  auto a = dom.find("id=\"" + id + "\"");
  if (a == std::string::npos) return "";
  a = dom.find('>', a) + 1;
  auto b = dom.find('<', a);
  return unescape_text(dom.substr(a, b - a));
}

json self_check(const Browser& b) {
  const std::string text = element_text(b.dom, "qmeter-selfcheck");
  if (text.empty()) return json{{"status", "absent"}, {"stderr", b.log.substr(0, 4000)}};
  return json::parse(text);
}

// The markup of one chart container in the dumped DOM, up to the next container or section end.
std::string chart_markup(const std::string& dom, const std::string& id) {
  auto a = dom.find("id=\"chart-" + id + "\"");
  if (a == std::string::npos) return "";
  auto b = std::min(dom.find("class=\"chart\"", a + 1), dom.find("</section>", a));
  return dom.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

std::vector<std::string> chart_ids(const std::string& html) {
  std::vector<std::string> ids;
  const std::string key = "class=\"chart\" id=\"chart-";
  for (auto p = html.find(key); p != std::string::npos; p = html.find(key, p + 1)) {
    auto a = p + key.size();
    ids.push_back(html.substr(a, html.find('"', a) - a));
  }
  return ids;
}

// URLs the page itself asked the network for, from Chromium's net log (--log-net-log). Chromium's
// own background requests (update checks, time queries) start with initiator "not an origin"; a
// request made by a file:// page has the opaque origin "null" as initiator.
std::vector<std::string> page_requests_in_net_log(const std::string& path) {
  const json log = json::parse(read_file(path));
  const int start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].get<int>();
  std::vector<std::string> urls;
  for (const auto& e : log["events"]) {
    if (e["type"] != start_job || !e.contains("params") || !e["params"].contains("url")) continue;
    if (e["params"].value("initiator", "") != "not an origin") urls.push_back(e["params"]["url"]);
  }
  return urls;
}

std::string make_report(const std::string& dir, const std::string& db, const std::string& study,
                        const std::string& name) {
  SpawnOptions o;
  o.argv = {qmeter::testing::qmeter_bin(), "report", "--db", db, "--study", study, "--output-html", dir + "/" + name};
  o.log_path = dir + "/" + name + ".log";
  auto p = ChildProcess::spawn(o);
  EXPECT_EQ(p.wait(120).value_or(-1), 0) << read_file(o.log_path);
  return dir + "/" + name;
}

// Every chart the page declares rendered, according to the page and to the dumped SVG itself.
void expect_all_charts_rendered(const Browser& b, const std::string& html, const json& check) {
  const auto ids = chart_ids(html);
  EXPECT_EQ(check["charts_expected"], ids.size());
  for (const auto& id : ids) {
    ASSERT_TRUE(check["charts"].contains(id)) << id;
    EXPECT_TRUE(check["charts"][id]["rendered"].get<bool>()) << id << ": " << check["charts"][id].dump();
    EXPECT_GT(check["charts"][id]["marks"].get<int>(), 0) << id;
    const std::string markup = chart_markup(b.dom, id);
    EXPECT_NE(markup.find("<svg"), std::string::npos) << id << " holds no SVG in the dumped DOM";
    EXPECT_NE(markup.find("role-mark"), std::string::npos) << id << " draws no data mark";
  }
}

}  // namespace

TEST(ReportBrowser, FullStudyRendersEveryChartOfflineWithoutErrors) {
  REQUIRE_CHROMIUM();
  auto dir = qmeter::testing::test_output_dir("report_browser_full");
  {
    auto db = store::Store::open(dir + "/demo.db");
    report_test::write_demo_study(*db);
  }
  const auto html_path = make_report(dir, dir + "/demo.db", "demo", "report.html");
  const std::string html = read_file(html_path);

  auto b = run_chromium(dir, "full", {"--window-size=1400,3000", "--log-net-log=" + dir + "/netlog.json",
                                      "--dump-dom", "file://" + fs::absolute(html_path).string()});
  EXPECT_EQ(b.status, 0) << b.log;
  const json check = self_check(b);
  ASSERT_EQ(check["status"], "ok") << check.dump(1);
  EXPECT_EQ(check["errors"], json::array());
  EXPECT_EQ(check["warnings"], json::array());
  EXPECT_EQ(check["csp_violations"], json::array());
  EXPECT_EQ(chart_ids(html).size(), 15u);
  expect_all_charts_rendered(b, html, check);
  EXPECT_NE(b.dom.find("[selfcheck: ok]</title>"), std::string::npos);
  EXPECT_EQ(check["table_rows"], 10);  // 3 runs x 3 load points + the failed run
  // The Pareto chart's load selector is bound and shows the default (the highest common load).
  const std::string pareto = chart_markup(b.dom, "pareto");
  EXPECT_NE(pareto.find("<select"), std::string::npos);
  EXPECT_NE(pareto.find("offered load: "), std::string::npos);
  // The failed run's error reached the page as text, not as markup that ran.
  EXPECT_NE(b.dom.find("backend exited during startup &lt;/script&gt;"), std::string::npos);

  // Chromium's own network log: the page asked the network for nothing.
  ASSERT_TRUE(fs::exists(dir + "/netlog.json")) << "chromium wrote no net log";
  EXPECT_EQ(page_requests_in_net_log(dir + "/netlog.json"), std::vector<std::string>{});

  // A screenshot for people, beside the test's other files.
  auto shot = run_chromium(dir, "shot", {"--window-size=1400,6400", "--hide-scrollbars",
                                         "--screenshot=" + dir + "/report.png",
                                         "file://" + fs::absolute(html_path).string()});
  EXPECT_EQ(shot.status, 0) << shot.log;
  ASSERT_TRUE(fs::exists(dir + "/report.png"));
  EXPECT_GT(fs::file_size(dir + "/report.png"), 50000u);
}

TEST(ReportBrowser, TableSortsAndExportsCsvInThePage) {
  REQUIRE_CHROMIUM();
  auto dir = qmeter::testing::test_output_dir("report_browser_table");
  {
    auto db = store::Store::open(dir + "/demo.db");
    report_test::write_demo_study(*db);
  }
  const auto html_path = make_report(dir, dir + "/demo.db", "demo", "report.html");
  // A probe after the page's script: sort by p99 TPOT twice (descending), then read the table back.
  std::string html = read_file(html_path);
  const std::string probe = R"js(<pre id="probe"></pre><script>
    qmeterSortTable("p99_tpot_ms"); qmeterSortTable("p99_tpot_ms");
    var cells = Array.prototype.map.call(document.querySelectorAll("#runs-table tbody tr"), function (tr) {
      return [tr.children[0].textContent, tr.children[2].textContent, tr.children[18].textContent]; });
    document.getElementById("probe").textContent = JSON.stringify({rows: cells, csv: qmeterTableCsv(),
      header: document.querySelector("#runs-table thead th:nth-child(19)").textContent});
  </script></body>)js";
  html.replace(html.rfind("</body>"), 7, probe);
  std::ofstream(dir + "/probe.html") << html;
  auto b = dump_dom(dir, "table", dir + "/probe.html");
  const json check = self_check(b);
  EXPECT_EQ(check["status"], "ok") << check.dump(1);
  const json probe_out = json::parse(element_text(b.dom, "probe"));
  EXPECT_EQ(probe_out["header"], "p99 TPOT ms \u25bc");
  // Descending p99 TPOT: 45 (w4a16 at 4), 40 (fp16 at 4), 30, 25, 20, 18, 15, 14, 12, then the failed
  // run without a value (empty cells go last in either order).
  std::vector<std::string> tpot;
  for (const auto& r : probe_out["rows"]) tpot.push_back(r[2]);
  EXPECT_EQ(tpot, (std::vector<std::string>{"45", "40", "30", "25", "20", "18", "15", "14", "12", ""}));
  EXPECT_EQ(probe_out["rows"][9][1], "awq-w4g128");  // the short label
  const std::string csv = probe_out["csv"];
  EXPECT_EQ(csv.rfind("run_id,model,method,tp,hardware,status,", 0), 0u) << csv.substr(0, 200);
  std::size_t lines = 0;
  for (auto p = csv.find("\r\n"); p != std::string::npos; p = csv.find("\r\n", p + 2)) ++lines;
  EXPECT_EQ(lines, 11u);  // header + 10 rows
  // The failed run's error has quotes? No, but it has commas? It has '<' and '/': written as is.
  EXPECT_NE(csv.find("backend exited during startup </script><script>window.pwned=1</script>"), std::string::npos);
}

TEST(ReportBrowser, EmptyAndPartialStudiesGiveValidPagesThatSayWhatIsMissing) {
  REQUIRE_CHROMIUM();
  auto dir = qmeter::testing::test_output_dir("report_browser_partial");
  {
    auto db = store::Store::open(dir + "/p.db");
    report_test::write_partial_and_empty_studies(*db);
  }
  const auto partial = make_report(dir, dir + "/p.db", "partial", "partial.html");
  auto b = dump_dom(dir, "partial", partial);
  json check = self_check(b);
  EXPECT_EQ(check["status"], "ok") << check.dump(1);
  EXPECT_EQ(chart_ids(read_file(partial)).size(), 6u);
  expect_all_charts_rendered(b, read_file(partial), check);
  EXPECT_NE(b.dom.find("Energy per output token: not measured"), std::string::npos);
  EXPECT_NE(b.dom.find("Quality: no quality results"), std::string::npos);
  EXPECT_NE(b.dom.find("1 of 2 runs failed"), std::string::npos);

  const auto empty = make_report(dir, dir + "/p.db", "empty", "empty.html");
  b = dump_dom(dir, "empty", empty);
  check = self_check(b);
  EXPECT_EQ(check["status"], "ok") << check.dump(1);
  EXPECT_EQ(check["charts_expected"], 0);
  EXPECT_EQ(check["table_rows"], 0);
  EXPECT_NE(b.dom.find("This study has no runs yet"), std::string::npos);
  EXPECT_NE(b.dom.find("TTFT: no load point measured it"), std::string::npos);
}

// The checks above must be able to fail: a page with an outside image, a console error and a hidden
// chart is reported as failed, naming each fault.
TEST(ReportBrowser, SelfCheckReportsNetworkRequestsConsoleErrorsAndBlankCharts) {
  REQUIRE_CHROMIUM();
  auto dir = qmeter::testing::test_output_dir("report_browser_faults");
  {
    auto db = store::Store::open(dir + "/demo.db");
    report_test::write_demo_study(*db);
  }
  const auto html_path = make_report(dir, dir + "/demo.db", "demo", "report.html");
  std::string html = read_file(html_path);
  html.replace(html.rfind("</body>"), 7,
               "<img src=\"http://192.0.2.1/pixel.png\"><style>#chart-throughput{display:none}</style>"
               "<script>console.error('deliberate failure')</script></body>");
  std::ofstream(dir + "/faulty.html") << html;
  auto b = dump_dom(dir, "faulty", dir + "/faulty.html");
  const json check = self_check(b);
  EXPECT_EQ(check["status"], "failed") << check.dump(1);
  EXPECT_NE(check["csp_violations"].dump().find("http://192.0.2.1/pixel.png"), std::string::npos) << check.dump(1);
  EXPECT_NE(check["errors"].dump().find("deliberate failure"), std::string::npos) << check.dump(1);
  EXPECT_FALSE(check["charts"]["throughput"]["rendered"].get<bool>());
  EXPECT_TRUE(check["charts"]["goodput"]["rendered"].get<bool>());
  EXPECT_NE(b.dom.find("[selfcheck: failed]</title>"), std::string::npos);

  // The net log check sees a page request that no policy blocks (a bare page, nothing listening).
  std::ofstream(dir + "/bare.html") << "<html><body><img src=\"http://127.0.0.1:9/pixel.png\"></body></html>";
  run_chromium(dir, "bare", {"--log-net-log=" + dir + "/bare-netlog.json", "--dump-dom",
                              "file://" + fs::absolute(dir + "/bare.html").string()});
  EXPECT_EQ(page_requests_in_net_log(dir + "/bare-netlog.json"),
            std::vector<std::string>{"http://127.0.0.1:9/pixel.png"});
}
