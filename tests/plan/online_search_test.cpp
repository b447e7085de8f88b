// The online search behind `qmeter tune`: what it measures, in what order, and the front it reports.
#include <gtest/gtest.h>

#include <set>

#include "qmeter/core/error.h"
#include "qmeter/plan/online_search.h"

using namespace qmeter;

namespace {

// 3 models x 4 methods x 2 hardware settings; both objectives multiply a model factor by a method
// factor (exactly additive in log space), and the second hardware setting is 20% worse in both, so
// half the space is dominated. The true front is computed below by brute force.
struct Space {
  std::vector<std::vector<std::string>> factors;
  std::vector<std::vector<double>> values;
};

Space multiplicative_space() {
  const double model_time[] = {1, 2, 4}, model_ppl[] = {8, 6.5, 5.6};
  const double method_time[] = {1, 0.7, 0.5, 0.42}, method_ppl[] = {1, 1.01, 1.05, 1.3};
  Space s;
  for (int m = 0; m < 3; ++m)
    for (int q = 0; q < 4; ++q) {
      for (int h = 0; h < 2; ++h) {
        s.factors.push_back({"model" + std::to_string(m), "method" + std::to_string(q), h ? "hw-slow" : "hw-fast"});
        s.values.push_back({model_time[m] * method_time[q] * (h ? 1.2 : 1), model_ppl[m] * method_ppl[q] * (h ? 1.2 : 1)});
      }
    }
  return s;
}

std::vector<int> brute_force_front(const std::vector<std::vector<double>>& v) {
  std::vector<int> front;
  for (std::size_t i = 0; i < v.size(); ++i) {
    bool dominated = false;
    for (std::size_t j = 0; j < v.size() && !dominated; ++j)
      dominated = v[j][0] <= v[i][0] && v[j][1] <= v[i][1] && (v[j][0] < v[i][0] || v[j][1] < v[i][1]);
    if (!dominated) front.push_back(static_cast<int>(i));
  }
  return front;
}

const std::vector<analysis::Objective> kMinBoth = {{"time", false}, {"ppl", false}};

}  // namespace

TEST(OnlineSearch, WholeBudgetMeasuresEverythingOnceAndReportsTheTrueFront) {
  const auto s = multiplicative_space();
  int calls = 0;
  auto r = plan::online_search(s.factors, kMinBoth, 100, [&](int c, std::string*) {
    ++calls;
    return std::optional<std::vector<double>>(s.values[c]);
  });
  EXPECT_EQ(calls, 24);
  std::set<int> distinct;
  for (const auto& st : r.steps) distinct.insert(st.candidate);
  EXPECT_EQ(distinct.size(), 24u);
  EXPECT_EQ(r.front, brute_force_front(s.values));
}

TEST(OnlineSearch, ScreeningCoversEveryLevelThenTheModelPicksPredictedFrontMembers) {
  const auto s = multiplicative_space();
  const auto truth = brute_force_front(s.values);
  auto r = plan::online_search(s.factors, kMinBoth, 8, [&](int c, std::string*) {
    return std::optional<std::vector<double>>(s.values[c]);
  });
  ASSERT_EQ(r.steps.size(), 8u);
  // Four screening steps cover the 4 methods and 3 models (the most levels of one factor).
  std::set<std::string> models, methods;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(r.steps[i].screening) << i;
    models.insert(s.factors[r.steps[i].candidate][0]);
    methods.insert(s.factors[r.steps[i].candidate][1]);
  }
  EXPECT_EQ(models.size(), 3u);
  EXPECT_EQ(methods.size(), 4u);
  for (int i = 4; i < 8; ++i) EXPECT_FALSE(r.steps[i].screening) << i;
  // The reported front is exactly the Pareto front of what was measured.
  std::vector<std::vector<double>> measured;
  std::vector<int> ids;
  for (const auto& st : r.steps) measured.push_back(st.values), ids.push_back(st.candidate);
  std::vector<int> expected;
  for (int i : brute_force_front(measured)) expected.push_back(ids[i]);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(r.front, expected);
  // Half the space measured finds the whole true front of 8 (a random half holds 4 on average).
  ASSERT_EQ(truth.size(), 8u);
  r = plan::online_search(s.factors, kMinBoth, 12, [&](int c, std::string*) {
    return std::optional<std::vector<double>>(s.values[c]);
  });
  int found = 0;
  for (const auto& st : r.steps) found += std::count(truth.begin(), truth.end(), st.candidate);
  EXPECT_EQ(found, 8);
  EXPECT_EQ(r.front, truth);
}

TEST(OnlineSearch, FailedMeasurementsAreReportedAndCountAgainstTheBudget) {
  const auto s = multiplicative_space();
  auto r = plan::online_search(s.factors, kMinBoth, 5, [&](int c, std::string* why) -> std::optional<std::vector<double>> {
    if (c == 0) {
      *why = "server did not start";
      return std::nullopt;
    }
    return s.values[c];
  });
  ASSERT_EQ(r.steps.size(), 5u);
  EXPECT_EQ(r.steps[0].candidate, 0);
  EXPECT_FALSE(r.steps[0].measured);
  EXPECT_EQ(r.steps[0].failure, "server did not start");
  EXPECT_EQ(std::count(r.front.begin(), r.front.end(), 0), 0);
  EXPECT_THROW(plan::online_search(s.factors, kMinBoth, 0, nullptr), UsageError);
}
