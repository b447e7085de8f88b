#include "checkpoint.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"

namespace qmeter::train {
namespace {
constexpr char kMagic[8] = {'Q', 'M', 'T', 'R', 'A', 'I', 'N', '1'};

void write_floats(std::ofstream& out, const std::vector<float>& v) {
  const std::uint64_t n = v.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
}
}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  nlohmann::json header;
  header["identity"] = c.identity;
  header["step"] = c.step;
  header["seconds"] = c.seconds;
  header["cpu_seconds"] = c.cpu_seconds;
  auto& hist = header["history"] = nlohmann::json::array();
  for (const auto& r : c.history) hist.push_back({r.step, r.lr, r.loss, r.grad_norm, r.tokens, r.seconds});
  const std::string text = header.dump();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write checkpoint " + tmp);
    out.write(kMagic, 8);
    const std::uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(text.data(), static_cast<std::streamsize>(len));
    write_floats(out, c.params);
    write_floats(out, c.adam_m);
    write_floats(out, c.adam_v);
    if (!out.flush()) throw Error("cannot write checkpoint " + tmp + " (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

Checkpoint load_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("--resume: no checkpoint at '{}'", path));
  auto bad = [&](const std::string& why) { return UsageError(fmt::format("checkpoint '{}': {}", path, why)); };
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) throw bad("not a qmeter training checkpoint");
  std::uint64_t len = 0;
  if (!in.read(reinterpret_cast<char*>(&len), 8) || len > (1u << 30)) throw bad("truncated header");
  std::string text(len, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(len))) throw bad("truncated header");
  Checkpoint c;
  try {
    const auto header = nlohmann::json::parse(text);
    c.identity = header.at("identity").get<std::string>();
    c.step = header.at("step").get<int>();
    c.seconds = header.at("seconds").get<double>();
    c.cpu_seconds = header.at("cpu_seconds").get<double>();
    for (const auto& r : header.at("history"))
      c.history.push_back(LossRecord{r.at(0).get<int>(), r.at(1).get<double>(), r.at(2).get<double>(),
                                     r.at(3).get<double>(), r.at(4).get<std::int64_t>(), r.at(5).get<double>()});
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("malformed header: ") + e.what());
  }
  for (auto* v : {&c.params, &c.adam_m, &c.adam_v}) {
    std::uint64_t n = 0;
    if (!in.read(reinterpret_cast<char*>(&n), 8) || n > (std::uint64_t{1} << 34)) throw bad("truncated tensor data");
    v->resize(n);
    if (!in.read(reinterpret_cast<char*>(v->data()), static_cast<std::streamsize>(n * sizeof(float))))
      throw bad("truncated tensor data");
  }
  return c;
}

}  // namespace qmeter::train
