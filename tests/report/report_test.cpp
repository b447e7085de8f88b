// The report's content without a browser: chart specs against the known numbers of the fixture,
// the embedded data against `qmeter export`, empty and partial studies, and bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <tuple>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "assets.h"
#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/report/report.h"
#include "report_fixture.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

json read_json(const std::string& path) { return json::parse(read_file(path)); }

int run_cli(const std::vector<std::string>& args, const std::string& log) {
  return qmeter::testing::run_qmeter(args, log, 120);
}

// The text of <script type="application/json" id="ID">...</script> in a page.
std::string embedded_script(const std::string& html, const std::string& id) {
  const std::string open = "<script type=\"application/json\" id=\"" + id + "\">";
  auto a = html.find(open);
  if (a == std::string::npos) return "";
  a += open.size();
  auto b = html.find("</script>", a);
  return b == std::string::npos ? "" : html.substr(a, b - a);
}

// Every object in a JSON tree, depth first.
void each_object(const json& j, const std::function<void(const json&)>& f) {
  if (j.is_object()) {
    f(j);
    for (const auto& [k, v] : j.items()) each_object(v, f);
  } else if (j.is_array()) {
    for (const auto& v : j) each_object(v, f);
  }
}

const json& values_of(const json& spec) { return spec["data"]["values"]; }

std::string demo_db(const std::string& dir) {
  const std::string path = dir + "/demo.db";
  auto db = store::Store::open(path);
  report_test::write_demo_study(*db);
  return path;
}

struct DemoReport {
  std::string dir, db_path;
  report::ReportSummary summary;
  std::map<std::string, json> specs;  // chart id -> spec read back from the specs folder
};

DemoReport make_demo_report(const std::string& name) {
  DemoReport r;
  r.dir = qmeter::testing::test_output_dir(name);
  r.db_path = demo_db(r.dir);
  auto db = store::Store::open(r.db_path);
  r.summary = report::write_report(*db, "demo", r.dir + "/report.html");
  for (const auto& e : fs::directory_iterator(r.summary.specs_dir)) {
    auto file = e.path().filename().string();
    r.specs[file.substr(0, file.size() - std::string(".vl.json").size())] = read_json(e.path().string());
  }
  return r;
}

}  // namespace

TEST(ReportSpecs, EveryChartIsWrittenWithFixedMethodColoursAndRunIdTooltips) {
  auto r = make_demo_report("report_specs_charts");
  EXPECT_EQ(r.summary.specs_dir, r.dir + "/report.html.specs");
  std::set<std::string> ids;
  for (const auto& [id, spec] : r.specs) ids.insert(id);
  const auto runs = store::Store::open(r.db_path)->runs("demo");
  std::set<std::string> expected = {"latency_ttft",     "latency_tpot",       "latency_e2el", "throughput",
                                    "goodput",          "slo_knee",           "energy_per_token",
                                    "energy_per_request", "avg_power",        "quality",      "quality_vs_bits",
                                    "pareto"};
  for (int i = 0; i < 3; ++i) expected.insert("power_trace_" + runs[i].id);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(r.summary.charts.size(), expected.size());

  const json domain = {"fp16", "rtn-w8", "rtn-w4g128", "awq-w4g128"};  // the short labels
  for (const auto& [id, spec] : r.specs) {
    EXPECT_EQ(spec["$schema"], "https://vega.github.io/schema/vega-lite/v5.json") << id;
    int method_encodings = 0, tooltips = 0;
    json first_range;
    each_object(spec, [&](const json& o) {
      if (o.contains("field") && o["field"] == "method" && o.contains("scale")) {
        ++method_encodings;
        EXPECT_EQ(o["scale"]["domain"], domain) << id;
        if (first_range.is_null()) first_range = o["scale"]["range"];
        EXPECT_EQ(o["scale"]["range"], first_range) << id;
        EXPECT_EQ(o["scale"]["range"][0], "#4c78a8");  // fp16's colour everywhere
      }
      if (o.contains("tooltip") && o["tooltip"].is_array()) {
        ++tooltips;
        // Every tooltip names the run, except the SLO threshold lines (they belong to no run).
        bool has_run_id = false, slo_line = false;
        for (const auto& t : o["tooltip"]) {
          has_run_id |= t.value("field", "") == "run_id";
          slo_line |= t.value("field", "") == "threshold_ms";
        }
        EXPECT_TRUE(has_run_id || slo_line) << id << ": a tooltip without the run id: " << o["tooltip"].dump();
      }
    });
    EXPECT_GE(method_encodings, 1) << id << " does not colour by method";
    EXPECT_GE(tooltips, 1) << id << " has no tooltip";
  }
}

TEST(ReportSpecs, LatencyValuesAndSloLinesAreTheStoredOnes) {
  auto r = make_demo_report("report_specs_latency");
  const auto methods = report_test::demo_methods();
  const auto& tpot = r.specs.at("latency_tpot");
  std::map<std::tuple<std::string, double, std::string>, double> got;
  for (const auto& row : values_of(tpot)) {
    // Keyed by the stored method (the full form; "method" is the short label of the legend).
    got[{row["method_options"].get<std::string>(), row["offered"].get<double>(), row["percentile"].get<std::string>()}] =
        row["value"].get<double>();
    EXPECT_FALSE(row["run_id"].get<std::string>().empty());
  }
  ASSERT_EQ(got.size(), 3u * 3u * 2u);
  for (const auto& m : methods) {
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ((got[{m.method, report_test::kLoads[k], "p50"}]), m.tpot_p50[k]);
      EXPECT_EQ((got[{m.method, report_test::kLoads[k], "p99"}]), m.tpot_p99[k]);
    }
  }
  auto thresholds = [&](const std::string& id) {
    std::set<double> t;
    for (const auto& layer : r.specs.at(id)["layer"]) {
      if (layer.contains("data") && layer["mark"]["type"] == "rule") {
        for (const auto& row : layer["data"]["values"]) t.insert(row["threshold_ms"].get<double>());
      }
    }
    return t;
  };
  EXPECT_EQ(thresholds("latency_ttft"), (std::set<double>{200, 2000}));
  EXPECT_EQ(thresholds("latency_tpot"), (std::set<double>{50, 200}));
  EXPECT_EQ(thresholds("latency_e2el"), (std::set<double>{2000}));  // batch has no E2E bound
}

TEST(ReportSpecs, KneeParetoQualityAndPowerTraceMatchHandComputedValues) {
  auto r = make_demo_report("report_specs_derived");
  // SLO knee at 90% attainment. fp16 achieved 3.2 of the offered 4 req/s (below 90%: not
  // sustainable), so its 4 req/s point meets no SLO whatever its percentiles say (0.5 there):
  // interactive 0.95 at 2, 0 at 4 -> 2 + 2 * (0.95 - 0.9) / 0.95.
  std::map<std::pair<std::string, std::string>, json> knee;
  for (const auto& row : values_of(r.specs.at("slo_knee"))) knee[{row["method"], row["slo"]}] = row;
  ASSERT_EQ(knee.size(), 6u);
  auto kn = [&](const std::string& method, const std::string& slo) { return knee[{method, slo}]; };
  EXPECT_NEAR(kn("fp16", "interactive")["knee"].get<double>(), 2 + 2 * 0.05 / 0.95, 1e-9);
  EXPECT_NE(kn("fp16", "interactive")["knee_kind"].get<std::string>().find("between 2 and 4"), std::string::npos);
  EXPECT_EQ(kn("rtn-w8", "interactive")["knee"], 4.0);
  EXPECT_EQ(kn("rtn-w8", "interactive")["note"], "\u2265 4");
  EXPECT_EQ(kn("rtn-w4g128", "interactive")["note"], "none");  // 0.8 at the lowest load
  for (const char* m : {"rtn-w8", "rtn-w4g128"}) EXPECT_EQ(kn(m, "batch")["knee"], 4.0);
  EXPECT_NEAR(kn("fp16", "batch")["knee"].get<double>(), 2 + 2 * (1.0 - 0.9) / 1.0, 1e-9);  // 1 at 2, 0 at 4

  // Pareto (minimize J/token and p99 TPOT). At 4 req/s: fp16 (0.40, 40) is dominated by w8a16
  // (0.28, 30); w4a16 (0.25, 45) has the lowest energy. At 1 req/s w4a16 (0.30, 12) dominates both.
  const auto& pareto = r.specs.at("pareto");
  EXPECT_EQ(pareto["params"][0]["value"], 4.0);  // the highest load every config measured
  EXPECT_EQ(pareto["params"][0]["bind"]["options"], json({1.0, 2.0, 4.0}));
  std::map<std::pair<double, std::string>, bool> front;
  for (const auto& row : values_of(pareto)) {
    front[{row["choice"].get<double>(), row["method"].get<std::string>()}] = row["front"].get<bool>();
    EXPECT_TRUE(row["exact"].get<bool>());
  }
  EXPECT_EQ(front.size(), 9u);
  EXPECT_FALSE((front[{4.0, "fp16"}]));
  EXPECT_TRUE((front[{4.0, "rtn-w8"}]));
  EXPECT_TRUE((front[{4.0, "rtn-w4g128"}]));
  EXPECT_FALSE((front[{1.0, "fp16"}]));
  EXPECT_FALSE((front[{1.0, "rtn-w8"}]));
  EXPECT_TRUE((front[{1.0, "rtn-w4g128"}]));
  EXPECT_EQ(pareto["layer"][1]["encoding"]["fill"]["field"], "quality");
  EXPECT_EQ(pareto["layer"][1]["encoding"]["fill"]["title"], "perplexity:tiny.perplexity (lower is better)");

  // Quality vs bits (the registry's, as stored): fp16 16, w8a16 8 + 32/4096 (an f32 scale per row
  // of a nominal 4096), w4a16-rtn (4 bits, groups of 128) 4 + (16 + 8)/128 (f16 scale, u8 zero).
  std::map<std::pair<std::string, std::string>, json> q;
  for (const auto& row : values_of(r.specs.at("quality_vs_bits"))) q[{row["method"], row["key"]}] = row;
  EXPECT_EQ(q.size(), 3u * 2u + 2u);
  EXPECT_EQ((q[{"fp16", "perplexity:tiny.perplexity"}]["bits_per_weight"]), 16.0);
  EXPECT_DOUBLE_EQ((q[{"rtn-w8", "kl.kl"}]["bits_per_weight"].get<double>()), 8 + 32.0 / 4096);
  EXPECT_DOUBLE_EQ((q[{"rtn-w4g128", "mc:arc.acc"}]["bits_per_weight"].get<double>()), 4 + 24.0 / 128);
  EXPECT_EQ((q[{"rtn-w4g128", "mc:arc.acc"}]["method_options"]), "w4a16-rtn");  // the full form, for the tooltip
  EXPECT_DOUBLE_EQ((q[{"rtn-w4g128", "perplexity:tiny.perplexity"}]["lo"].get<double>()), 5.40 - 0.06);
  EXPECT_DOUBLE_EQ((q[{"rtn-w4g128", "perplexity:tiny.perplexity"}]["hi"].get<double>()), 5.40 + 0.06);

  // Power trace of the first run: 10 idle samples, then 20 per load point at 100 + 20 * load W.
  const auto runs = store::Store::open(r.db_path)->runs("demo");
  const auto& trace = r.specs.at("power_trace_" + runs[0].id);
  EXPECT_EQ(values_of(trace).size(), 70u);
  EXPECT_EQ(values_of(trace)[0]["power_w"], 50.0);
  EXPECT_EQ(values_of(trace)[69]["power_w"], 180.0);
  EXPECT_NEAR(values_of(trace)[69]["t_s"].get<double>(), 6.9, 1e-9);
  const auto& segments = trace["layer"][0]["data"]["values"];
  ASSERT_EQ(segments.size(), 4u);
  EXPECT_EQ(segments[0]["phase"], "idle");
  EXPECT_TRUE(segments[0]["load"].is_null());
  EXPECT_NEAR(segments[0]["end_s"].get<double>(), 0.9, 1e-9);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(segments[k + 1]["phase"], "load");
    EXPECT_EQ(segments[k + 1]["load"], report_test::kLoads[k]);
    EXPECT_NEAR(segments[k + 1]["start_s"].get<double>(), 1.0 + 2.0 * k, 1e-9);
  }
  // Energy: the source named in the title, the values as stored.
  EXPECT_NE(r.specs.at("energy_per_token")["title"].get<std::string>().find("counter, modelled"), std::string::npos);
  std::map<std::pair<std::string, double>, double> ept;
  for (const auto& row : values_of(r.specs.at("energy_per_request")))
    ept[{row["method"].get<std::string>(), row["offered"].get<double>()}] = row["value"].get<double>();
  EXPECT_EQ((ept[{"rtn-w8", 2.0}]), 38.0);
}

TEST(ReportSpecs, WarningsNameTheFailedRunMismatchesAndUnstableWindows) {
  auto r = make_demo_report("report_specs_warnings");
  ASSERT_EQ(r.summary.warnings.size(), 3u);
  std::string all;
  for (const auto& w : r.summary.warnings) all += w + "\n";
  EXPECT_NE(all.find("run03awq (tiny / awq-w4g128) failed: backend exited during startup"), std::string::npos) << all;
  EXPECT_NE(all.find("rate 4: 3 requests whose server token count differs"), std::string::npos) << all;
  EXPECT_NE(all.find("rate 4: not sustainable, meets no SLO (achieved 3.2 req/s, below 90% of the offered 4 req/s)"),
            std::string::npos)
      << all;
  const std::string html = read_file(r.summary.out_html);
  EXPECT_NE(html.find("fatal: CUDA out of memory"), std::string::npos);  // the failed run's log tail
}

TEST(ReportCli, EmbeddedDataEqualsTheExportAndNothingEndsAScriptEarly) {
  auto dir = qmeter::testing::test_output_dir("report_cli_export");
  const auto db = demo_db(dir);
  ASSERT_EQ(run_cli({"report", "--db", db, "--output-html", dir + "/r.html", "--specs-dir", dir + "/specs"}, dir + "/log.txt"), 0)
      << read_file(dir + "/log.txt");
  EXPECT_NE(read_file(dir + "/log.txt").find("report of study 'demo'"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/specs/pareto.vl.json"));
  ASSERT_EQ(run_cli({"export", "--db", db, "--format", "json", "--output-file", dir + "/export.json"}, dir + "/elog.txt"), 0);
  const std::string html = read_file(dir + "/r.html");
  const std::string embedded = embedded_script(html, "qmeter-data");
  ASSERT_FALSE(embedded.empty());
  const json exported = read_json(dir + "/export.json");
  EXPECT_EQ(json::parse(embedded), exported);
  EXPECT_EQ(exported["requests"].size(), 27u);
  EXPECT_EQ(exported["requests"][0]["text"], "a reply with <b>markup</b> and </script> inside");
  // Every '<' in data is escaped, so the page has exactly as many </script> as <script ...> tags.
  auto count = [&](const std::string& needle) {
    std::size_t n = 0;
    for (auto p = html.find(needle); p != std::string::npos; p = html.find(needle, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<script"), count("</script>"));
  EXPECT_EQ(count("<script"), 7u);  // early hooks, data, report, vega, vega-lite, vega-embed, page script
  EXPECT_EQ(html.find("<script>window.pwned"), std::string::npos);
  EXPECT_NE(html.find("&lt;/script&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;"), std::string::npos);
  // The page's own JSON (charts and table) parses and lists every run and load point.
  const json rep = json::parse(embedded_script(html, "qmeter-report"));
  EXPECT_EQ(rep["table"]["rows"].size(), 3u * 3u + 1u);
  EXPECT_EQ(rep["charts"].size(), 15u);
}

TEST(ReportCli, TheChartLibrariesAreInlinedByteForByte) {
  const auto& assets = report::detail::embedded_assets();
  ASSERT_EQ(assets.size(), 3u);
  const std::string web = qmeter::testing::source_dir() + "/src/report/web/node_modules/";
  const std::string files[] = {web + "vega/build/vega.min.js", web + "vega-lite/build/vega-lite.min.js",
                               web + "vega-embed/build/vega-embed.min.js"};
  auto dir = qmeter::testing::test_output_dir("report_cli_assets");
  const auto db = demo_db(dir);
  ASSERT_EQ(run_cli({"report", "--db", db, "--output-html", dir + "/r.html"}, dir + "/log.txt"), 0);
  const std::string html = read_file(dir + "/r.html");
  for (int i = 0; i < 3; ++i) {
    const std::string lib = read_file(files[i]);
    EXPECT_EQ(std::string(assets[i].text()), lib) << files[i];
    EXPECT_NE(html.find(lib), std::string::npos) << files[i] << " is not inlined";
  }
  // Offline by construction: the policy forbids every fetch, and no src= or href= leaves the page.
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
}

TEST(ReportCli, EmptyAndPartialStudiesSayWhatIsMissing) {
  auto dir = qmeter::testing::test_output_dir("report_cli_partial");
  {
    auto db = store::Store::open(dir + "/p.db");
    report_test::write_partial_and_empty_studies(*db);
  }
  ASSERT_EQ(run_cli({"report", "--db", dir + "/p.db", "--study", "empty", "--output-html", dir + "/empty.html"}, dir + "/e.txt"),
            0)
      << read_file(dir + "/e.txt");
  const std::string empty = read_file(dir + "/empty.html");
  EXPECT_NE(empty.find("This study has no runs yet"), std::string::npos);
  EXPECT_NE(empty.find("TTFT: no load point measured it"), std::string::npos);
  EXPECT_NE(empty.find("Quality: no quality results"), std::string::npos);
  EXPECT_NE(empty.find("Pareto chart: needs load points"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir + "/empty.html.specs"));

  ASSERT_EQ(run_cli({"report", "--db", dir + "/p.db", "--study", "partial", "--output-html", dir + "/partial.html"},
                    dir + "/p.txt"),
            0)
      << read_file(dir + "/p.txt");
  const std::string partial = read_file(dir + "/partial.html");
  EXPECT_NE(partial.find("1 of 2 runs failed"), std::string::npos);
  EXPECT_NE(partial.find("server died during load point rate 1"), std::string::npos);
  EXPECT_NE(partial.find("Energy per output token: not measured"), std::string::npos);
  EXPECT_NE(partial.find("Power over time: no telemetry samples"), std::string::npos);
  EXPECT_NE(partial.find("Quality: no quality results"), std::string::npos);
  EXPECT_NE(partial.find("Pareto chart: needs load points"), std::string::npos);
  std::set<std::string> specs;
  for (const auto& e : fs::directory_iterator(dir + "/partial.html.specs")) specs.insert(e.path().filename().string());
  EXPECT_EQ(specs, (std::set<std::string>{"latency_ttft.vl.json", "latency_tpot.vl.json", "latency_e2el.vl.json",
                                          "throughput.vl.json", "goodput.vl.json", "slo_knee.vl.json"}));
}

TEST(ReportCli, BadInputsGiveClearErrors) {
  auto dir = qmeter::testing::test_output_dir("report_cli_errors");
  const auto db = demo_db(dir);
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{"report", "--db", dir + "/none.db", "--output-html", dir + "/r.html"}, "--db: no results database at"},
      {{"report", "--db", db, "--study", "nope", "--output-html", dir + "/r.html"}, "no study named 'nope' in the database (studies: demo)"},
      {{"report", "--db", db, "--output-html", "/proc/no/such/r.html"}, "--out: cannot create the folder of '/proc/no/such/r.html'"},
      {{"report", "--db", db, "--output-html", dir + "/r.html", "--knee-attainment", "1.5"}, "--knee-attainment"},
      {{"report", "--db", db}, "--output-html is required"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(run_cli(c.args, dir + "/log.txt"), 2) << c.expected;
    const std::string log = read_file(dir + "/log.txt");
    EXPECT_NE(log.find(c.expected), std::string::npos) << log;
    fs::remove(dir + "/log.txt");
  }
  EXPECT_FALSE(fs::exists(dir + "/r.html"));
}

TEST(ReportCli, SaysWhereEachRunRan) {
  auto dir = qmeter::testing::test_output_dir("report_placements");
  const auto db_path = demo_db(dir);
  ASSERT_EQ(run_cli({"report", "--db", db_path, "--output-html", dir + "/local.html"}, dir + "/log.txt"), 0);
  EXPECT_NE(read_file(dir + "/local.html").find("Every run executed locally"), std::string::npos);
  std::string run_id;
  {
    auto db = store::Store::open(db_path);
    run_id = db->runs("demo").at(0).id;
    store::PlacementRow p;
    p.run_id = run_id;
    p.executor = "slurm";
    p.label = "demo fp16";
    p.job_id = "41";
    p.task_id = 3;
    p.node = "gpu-node-7";
    p.state = "COMPLETED";
    p.exit_code = "0:0";
    p.start_unix_ms = 1000;
    p.end_unix_ms = 5000;
    db->put_placement(p);
    p.run_id = "not-in-this-study";
    p.node = "other-node";
    db->put_placement(p);
  }
  ASSERT_EQ(run_cli({"report", "--db", db_path, "--output-html", dir + "/slurm.html"}, dir + "/log2.txt"), 0)
      << read_file(dir + "/log2.txt");
  const std::string html = read_file(dir + "/slurm.html");
  EXPECT_NE(html.find("<h3>Where the runs ran</h3>"), std::string::npos);
  EXPECT_NE(html.find("<td>" + run_id + "</td><td>demo fp16</td><td>slurm</td><td>41_3</td><td>gpu-node-7</td>"),
            std::string::npos);
  EXPECT_EQ(html.find("<td>other-node</td>"), std::string::npos) << "only the study's runs";
  EXPECT_EQ(html.find("Every run executed locally"), std::string::npos);
}
