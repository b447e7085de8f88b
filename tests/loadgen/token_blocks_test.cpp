// Shared prefixes and Mooncake hash blocks at token level: prompts are built with exact token
// counts through `qmeter serve`'s /tokenize (stories260K on loopback), then tokenized there again;
// requests that share a prefix / hash id have identical token blocks exactly there, and differ
// elsewhere.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/client/http_call.h"
#include "qmeter/client/token_counter.h"
#include "qmeter/core/process.h"
#include "qmeter/workload/registry.h"
#include "test_support.h"

namespace qmeter::workload {
namespace {

using nlohmann::json;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class ServeStories : public ::testing::Test {
 protected:
  void SetUp() override {
    QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
    dir_ = qmeter::testing::test_output_dir("token_blocks");
    base_ = "http://127.0.0.1:" + std::to_string(free_port());
    SpawnOptions so;
    so.argv = {qmeter::testing::qmeter_bin(), "serve", "--model", model, "--port", base_.substr(base_.rfind(':') + 1)};
    so.log_path = dir_ + "/serve.log";
    server_ = ChildProcess::spawn(so);
    for (int i = 0; i < 1200 && caller_.get(base_ + "/health").status != 200; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_EQ(caller_.get(base_ + "/health").status, 200) << qmeter::file_tail(dir_ + "/serve.log");
    counter_ = client::server_token_counter(base_, "stories260K.bin");
  }
  void TearDown() override {
    if (server_.running()) server_.stop(10.0);
  }
  // The server's tokens of `text` (with its BOS).
  std::vector<int> tokens(const std::string& text) {
    const auto r = caller_.post_json(base_ + "/tokenize", json{{"prompt", text}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body)["tokens"].get<std::vector<int>>();
  }

  std::string dir_, base_;
  ChildProcess server_;
  client::HttpCaller caller_;
  std::function<int(const std::string&)> counter_;
};

std::vector<int> slice(const std::vector<int>& v, std::size_t from, std::size_t n) {
  return {v.begin() + static_cast<std::ptrdiff_t>(from), v.begin() + static_cast<std::ptrdiff_t>(std::min(v.size(), from + n))};
}

TEST_F(ServeStories, PrefixGroupsShareExactlyTheirPrefixTokens) {
  DatasetOptions d;
  d.spec = "prefix";
  d.num_prefixes = 3;
  d.prefix_len = 64;
  d.input_len = 16;
  d.num_prompts = 9;
  d.token_counter = &counter_;
  const DatasetSample s = load_dataset(d);
  std::vector<std::vector<int>> toks;
  std::vector<std::string> system;
  for (const auto& p : s.prompts) {
    toks.push_back(tokens(p.text));
    system.push_back(p.messages[0].content);
    ASSERT_EQ(toks.back().size(), 1u + 64 + 16) << p.text;  // BOS + prefix + suffix, exactly
  }
  for (std::size_t a = 0; a < toks.size(); ++a)
    for (std::size_t b = a + 1; b < toks.size(); ++b) {
      const bool same_group = system[a] == system[b];
      EXPECT_EQ(slice(toks[a], 0, 65) == slice(toks[b], 0, 65), same_group) << a << "," << b;
      EXPECT_NE(slice(toks[a], 65, 16), slice(toks[b], 65, 16)) << a << "," << b;  // own suffixes
    }
}

TEST_F(ServeStories, MooncakeHashIdsBecomeIdenticalTokenBlocks) {
  DatasetOptions d;
  d.spec = "mooncake:" + qmeter::testing::source_dir() + "/tests/workload/data/mooncake_sample.jsonl";
  d.num_prompts = 5;
  d.token_counter = &counter_;
  const DatasetSample s = load_dataset(d);
  const std::vector<int> in = {1100, 700, 1024, 300, 1030};
  const std::vector<std::vector<int>> ids = {{0, 1, 2}, {0, 3}, {0, 1}, {4}, {4, 5, 6}};
  std::vector<std::vector<int>> toks;
  for (std::size_t i = 0; i < 5; ++i) {
    toks.push_back(tokens(s.prompts[i].text));
    ASSERT_EQ(toks.back().size(), 1u + static_cast<std::size_t>(in[i])) << i;  // BOS + input_length
  }
  for (std::size_t a = 0; a < 5; ++a)
    for (std::size_t b = a + 1; b < 5; ++b)
      for (std::size_t k = 0; k < std::min(ids[a].size(), ids[b].size()); ++k) {
        // Block k = tokens [1 + 512 k, 1 + 512 (k + 1)) after BOS, compared over the shorter one.
        const std::size_t from = 1 + 512 * k;
        const std::size_t n = std::min({std::size_t{512}, toks[a].size() - from, toks[b].size() - from});
        EXPECT_EQ(slice(toks[a], from, n) == slice(toks[b], from, n), ids[a][k] == ids[b][k]) << a << "," << b << " block " << k;
      }
}

TEST_F(ServeStories, LongdocCutsRealTextToExactTokenCounts) {
  const std::string text = qmeter::testing::shared_data_file("eval/tinystories_val.txt");
  ASSERT_FALSE(text.empty());
  DatasetOptions d;
  d.spec = "longdoc:" + text;
  d.num_prompts = 4;
  d.input_len = 500;  // up to stories260K's context (512)
  d.range_ratio = 0.02;
  d.token_counter = &counter_;
  const DatasetSample s = load_dataset(d);
  for (const auto& p : s.prompts) {
    EXPECT_GE(p.prompt_tokens, 490);
    EXPECT_LE(p.prompt_tokens, 510);
    EXPECT_EQ(tokens(p.text).size(), 1u + static_cast<std::size_t>(p.prompt_tokens));  // BOS + the cut
  }
}

}  // namespace
}  // namespace qmeter::workload
