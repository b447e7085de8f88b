// GGUF v2/v3 files (llama.cpp's format): metadata key/values, tensor infos, aligned tensor data,
// memory-mapped. Architectures "llama" (interleaved RoPE: llama.cpp's converter un-permutes HF
// q/k) and "qwen2" (rotate-half RoPE, q/k/v biases). Dense types F32 / F16 / BF16, and every block
// type of gguf_blocks.h's traits table (Q4_0 .. Q8_0, Q2_K .. Q6_K, IQ4_NL, IQ4_XS), which stay
// packed and mapped in place for the matrices, each tensor its own type as llama-quantize's
// mixtures have them (embedding rows are dequantized on lookup); norms and biases must be dense. With
// LoadOptions::weight_dtype set, block matrices are dequantized into that dtype at load.
#include <fmt/format.h>

#include <cstring>
#include <map>
#include <variant>

#include "loader_common.h"
#include "mmap_file.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/gguf_writer.h"

namespace qmeter::engine {

namespace {

enum GgufType : std::uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

struct GgufValue {
  std::uint32_t type = 0;
  std::uint32_t elem_type = 0;  // arrays
  double number = 0;            // scalar numbers and bools
  std::string str;
  std::vector<double> numbers;      // numeric arrays
  std::vector<std::string> strings; // string arrays
};

std::string_view ggml_type_name(std::uint32_t t) {
  static const std::map<std::uint32_t, std::string_view> kNames = {
      {0, "F32"}, {1, "F16"}, {2, "Q4_0"}, {3, "Q4_1"}, {6, "Q5_0"}, {7, "Q5_1"}, {8, "Q8_0"}, {9, "Q8_1"},
      {10, "Q2_K"}, {11, "Q3_K"}, {12, "Q4_K"}, {13, "Q5_K"}, {14, "Q6_K"}, {15, "Q8_K"}, {16, "IQ2_XXS"},
      {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"}, {22, "IQ2_S"}, {23, "IQ4_XS"},
      {24, "I8"}, {25, "I16"}, {26, "I32"}, {27, "I64"}, {28, "F64"}, {29, "IQ1_M"}, {30, "BF16"}, {34, "TQ1_0"},
      {35, "TQ2_0"}};
  auto it = kNames.find(t);
  return it == kNames.end() ? std::string_view("unknown") : it->second;
}

// The one place a ggml tensor type becomes an engine DType (quantized types join here).
bool ggml_to_dtype(std::uint32_t ggml_type, DType& out) {
  switch (ggml_type) {
    case 0: out = DType::kF32; return true;
    case 1: out = DType::kF16; return true;
    case 30: out = DType::kBF16; return true;
    default:
      if (const auto d = gguf_dtype_of_ggml(ggml_type)) {
        out = *d;
        return true;
      }
      return false;
  }
}

class GgufReader {
 public:
  explicit GgufReader(const MappedFile& f) : f_(f) {}
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& what) {
    const auto n = read<std::uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void need(std::uint64_t n, const std::string& what) const {
    if (pos_ > f_.size() || n > f_.size() - pos_)
      throw Error(fmt::format("'{}': truncated GGUF file: {} needs {} bytes at offset {} but the file has {}", f_.path(),
                              what, n, pos_, f_.size()));
  }
  std::size_t pos() const { return pos_; }

  GgufValue value(std::uint32_t type, const std::string& what, bool in_array = false) {
    GgufValue v;
    v.type = type;
    switch (type) {
      case kU8: v.number = read<std::uint8_t>(what); break;
      case kI8: v.number = read<std::int8_t>(what); break;
      case kU16: v.number = read<std::uint16_t>(what); break;
      case kI16: v.number = read<std::int16_t>(what); break;
      case kU32: v.number = read<std::uint32_t>(what); break;
      case kI32: v.number = read<std::int32_t>(what); break;
      case kF32: v.number = read<float>(what); break;
      case kBool: v.number = read<std::uint8_t>(what) != 0; break;
      case kU64: v.number = static_cast<double>(read<std::uint64_t>(what)); break;
      case kI64: v.number = static_cast<double>(read<std::int64_t>(what)); break;
      case kF64: v.number = read<double>(what); break;
      case kString: v.str = string(what); break;
      case kArray: {
        if (in_array) throw Error(fmt::format("'{}': {}: nested GGUF arrays are not supported", f_.path(), what));
        v.elem_type = read<std::uint32_t>(what);
        const auto n = read<std::uint64_t>(what);
        need(n, what);  // every element takes at least one byte
        if (v.elem_type == kString) {
          v.strings.reserve(n);
          for (std::uint64_t i = 0; i < n; ++i) v.strings.push_back(string(what));
        } else {
          v.numbers.reserve(n);
          for (std::uint64_t i = 0; i < n; ++i) v.numbers.push_back(value(v.elem_type, what, true).number);
        }
        break;
      }
      default:
        throw Error(fmt::format("'{}': {} has unknown GGUF value type {}", f_.path(), what, type));
    }
    return v;
  }

 private:
  const MappedFile& f_;
  std::size_t pos_ = 0;
};

struct TensorInfo {
  std::vector<std::uint64_t> dims;  // ne[0] is the innermost (columns)
  std::uint32_t type = 0;
  std::uint64_t offset = 0;
};

// A block matrix dequantized into a dense `target` copy the model owns (LoadOptions::weight_dtype,
// e.g. the f32 weights quantize_model starts from).
Matrix dequantized_copy(WeightBuilder& wb, const Matrix& m, DType target) {
  if (target != DType::kF32 && target != DType::kBF16 && target != DType::kF16)
    throw Error(fmt::format("cannot convert {} weights to {} at load", dtype_name(m.dtype), dtype_name(target)));
  const std::size_t n = static_cast<std::size_t>(m.cols);
  std::byte* out = wb.allocate(dense_bytes(target, n * static_cast<std::size_t>(m.rows)));
  std::vector<float> row(n);
  for (int r = 0; r < m.rows; ++r) {
    float* dst = target == DType::kF32 ? reinterpret_cast<float*>(out) + n * static_cast<std::size_t>(r) : row.data();
    matrix_row_to_f32(m, r, dst);
    auto* h = reinterpret_cast<std::uint16_t*>(out) + n * static_cast<std::size_t>(r);
    if (target == DType::kBF16)
      for (std::size_t c = 0; c < n; ++c) h[c] = f32_to_bf16(row[c]);
    if (target == DType::kF16)
      for (std::size_t c = 0; c < n; ++c) h[c] = f32_to_f16(row[c]);
  }
  return Matrix{target, m.rows, m.cols, out};
}

// The parsed header: metadata, tensor infos, and where the tensor data starts.
struct GgufHeader {
  std::string path;
  std::map<std::string, GgufValue> meta;
  std::map<std::string, TensorInfo> infos;
  std::size_t end = 0;  // first byte after the tensor infos

  const GgufValue* find(const std::string& key) const {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  }
  double number(const std::string& key, std::optional<double> fallback) const {
    const GgufValue* v = find(key);
    if (v == nullptr) {
      if (fallback) return *fallback;
      throw Error(fmt::format("'{}': metadata '{}' is missing", path, key));
    }
    if (v->type == kString || v->type == kArray) throw Error(fmt::format("'{}': metadata '{}' is not a number", path, key));
    return v->number;
  }
  std::string string(const std::string& key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return {};
    if (v->type != kString) throw Error(fmt::format("'{}': metadata '{}' is not a string", path, key));
    return v->str;
  }
};

GgufHeader parse_header(const MappedFile& file) {
  const std::string& path = file.path();
  GgufReader rd(file);
  const auto magic = rd.read<std::uint32_t>("the magic number");
  if (std::memcmp(&magic, "GGUF", 4) != 0) throw Error(fmt::format("'{}': bad magic: not a GGUF file", path));
  const auto version = rd.read<std::uint32_t>("the version");
  if (version != 2 && version != 3)
    throw Error(fmt::format("'{}': unsupported GGUF version {} (2 and 3 are supported)", path, version));
  const auto n_tensors = rd.read<std::uint64_t>("the tensor count");
  const auto n_kv = rd.read<std::uint64_t>("the metadata count");
  if (n_tensors > 1'000'000 || n_kv > 1'000'000)
    throw Error(fmt::format("'{}': implausible GGUF header ({} tensors, {} metadata keys)", path, n_tensors, n_kv));
  GgufHeader h;
  h.path = path;
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    std::string key = rd.string(fmt::format("metadata key #{}", i));
    const auto type = rd.read<std::uint32_t>(fmt::format("metadata '{}'", key));
    h.meta[key] = rd.value(type, fmt::format("metadata '{}'", key));
  }
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    std::string name = rd.string(fmt::format("tensor info #{}", i));
    const std::string what = fmt::format("tensor info '{}'", name);
    TensorInfo t;
    const auto n_dims = rd.read<std::uint32_t>(what);
    if (n_dims == 0 || n_dims > 4) throw Error(fmt::format("'{}': tensor '{}' has {} dimensions", path, name, n_dims));
    for (std::uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(rd.read<std::uint64_t>(what));
    t.type = rd.read<std::uint32_t>(what);
    t.offset = rd.read<std::uint64_t>(what);
    h.infos[name] = std::move(t);
  }
  h.end = rd.pos();
  return h;
}

// The tokenizer.ggml.* vocabulary, or nullopt when the file has none.
std::optional<TokenizerVocab> vocab_of(const GgufHeader& header) {
  const std::string& path = header.path;
  auto find_meta = [&](const std::string& key) { return header.find(key); };
  auto meta_number = [&](const std::string& key, std::optional<double> fallback) { return header.number(key, fallback); };
  auto meta_string = [&](const std::string& key) { return header.string(key); };
  const GgufValue* toks = find_meta("tokenizer.ggml.tokens");
  if (toks == nullptr) return std::nullopt;
  if (toks->type != kArray || toks->elem_type != kString)
    throw Error(fmt::format("'{}': metadata 'tokenizer.ggml.tokens' is not a string array", path));
  TokenizerVocab v;
  v.model = meta_string("tokenizer.ggml.model");
  v.pre = meta_string("tokenizer.ggml.pre");
  v.tokens = toks->strings;
  auto numbers = [&](const char* key) -> std::vector<double> {
    const GgufValue* a = find_meta(key);
    if (a == nullptr) return {};
    if (a->type != kArray || a->elem_type == kString)
      throw Error(fmt::format("'{}': metadata '{}' is not a numeric array", path, key));
    if (a->numbers.size() != v.tokens.size())
      throw Error(fmt::format("'{}': metadata '{}' has {} entries for {} tokens", path, key, a->numbers.size(),
                              v.tokens.size()));
    return a->numbers;
  };
  for (double s : numbers("tokenizer.ggml.scores")) v.scores.push_back(static_cast<float>(s));
  for (double t : numbers("tokenizer.ggml.token_type")) {
    if (!(t >= 0 && t <= 255)) throw Error(fmt::format("'{}': metadata 'tokenizer.ggml.token_type' has value {}", path, t));
    v.token_types.push_back(static_cast<int>(t));
  }
  if (const GgufValue* m = find_meta("tokenizer.ggml.merges"); m != nullptr) v.merges = m->strings;
  auto token_id = [&](const char* key) {
    const double id = meta_number(key, -1.0);
    if (!(id >= -1 && id < static_cast<double>(v.tokens.size())))
      throw Error(fmt::format("'{}': metadata '{}' = {} is not a token id", path, key, id));
    return static_cast<int>(id);
  };
  v.bos_id = token_id("tokenizer.ggml.bos_token_id");
  v.eos_id = token_id("tokenizer.ggml.eos_token_id");
  v.unk_id = token_id("tokenizer.ggml.unknown_token_id");
  v.add_bos = meta_number("tokenizer.ggml.add_bos_token", 1.0) != 0.0;
  v.add_space_prefix = meta_number("tokenizer.ggml.add_space_prefix", 1.0) != 0.0;
  v.source = path;
  return v;
}

}  // namespace

std::unique_ptr<Model> load_gguf_model(const std::string& path, const LoadOptions& options) {
  auto file = MappedFile::open(path);
  const GgufHeader header = parse_header(*file);
  const std::map<std::string, TensorInfo>& infos = header.infos;
  auto meta_number = [&](const std::string& key, std::optional<double> fallback) { return header.number(key, fallback); };
  auto meta_string = [&](const std::string& key) { return header.string(key); };

  const double alignment_value = meta_number("general.alignment", 32.0);
  if (!(alignment_value >= 1 && alignment_value <= 65536))
    throw Error(fmt::format("'{}': metadata 'general.alignment' = {} is out of range", path, alignment_value));
  const auto alignment = static_cast<std::uint64_t>(alignment_value);
  if ((alignment & (alignment - 1)) != 0)
    throw Error(fmt::format("'{}': metadata 'general.alignment' = {} is not a power of two", path, alignment));
  const std::uint64_t data_start = (header.end + alignment - 1) / alignment * alignment;
  if (data_start > file->size())
    throw Error(fmt::format("'{}': truncated GGUF file: no tensor data after the header", path));
  const std::uint64_t data_size = file->size() - data_start;

  const std::string arch = meta_string("general.architecture");
  if (arch != "llama" && arch != "qwen2")
    throw Error(fmt::format("'{}': unsupported architecture '{}' (general.architecture; llama and qwen2 are supported)",
                            path, arch));
  auto model = std::make_unique<Model>();
  model->format = "gguf";
  model->source = path;
  ModelConfig& c = model->config;
  c.architecture = arch;
  auto int_meta = [&](const std::string& key, std::optional<double> fallback = std::nullopt) {
    const double v = meta_number(arch + "." + key, fallback);
    if (!(v >= 0 && v <= (1 << 30)))
      throw Error(fmt::format("'{}': metadata '{}.{}' = {} is out of range", path, arch, key, v));
    return static_cast<int>(v);
  };
  c.dim = int_meta("embedding_length");
  c.hidden_dim = int_meta("feed_forward_length");
  c.n_layers = int_meta("block_count");
  c.n_heads = int_meta("attention.head_count");
  c.n_kv_heads = int_meta("attention.head_count_kv", c.n_heads);
  c.max_seq_len = int_meta("context_length", 2048);
  if (c.n_heads <= 0) throw Error(fmt::format("'{}': metadata '{}.attention.head_count' must be positive", path, arch));
  c.head_dim = int_meta("rope.dimension_count", c.dim / c.n_heads);
  c.rope_theta = static_cast<float>(meta_number(arch + ".rope.freq_base", 10000.0));
  c.norm_eps = static_cast<float>(meta_number(arch + ".attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_style = arch == "qwen2" ? RopeStyle::kHalf : RopeStyle::kInterleaved;
  c.attention_bias = arch == "qwen2";
  auto emb = infos.find("token_embd.weight");
  if (emb == infos.end() || emb->second.dims.size() != 2)
    throw Error(fmt::format("'{}': tensor 'token_embd.weight' missing or not 2-D", path));
  c.vocab_size = int_meta("vocab_size", static_cast<double>(emb->second.dims[1]));
  c.tied_embeddings = !infos.count("output.weight");
  c.validate(path);

  WeightBuilder wb(*model, options);
  auto tensor = [&](const std::string& name, std::vector<std::uint64_t> dims, DType& dtype) -> const std::byte* {
    auto it = infos.find(name);
    if (it == infos.end()) throw Error(fmt::format("'{}': tensor '{}' not found", path, name));
    const TensorInfo& t = it->second;
    auto dims_str = [](const std::vector<std::uint64_t>& d) {
      std::string s = "[";
      for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
      return s + "]";
    };
    if (t.dims != dims)
      throw Error(fmt::format("'{}': tensor '{}' has dims {}, expected {}", path, name, dims_str(t.dims), dims_str(dims)));
    if (!ggml_to_dtype(t.type, dtype)) {
      std::string supported = "F32, F16, BF16";
      for (const GgufBlockTraits& b : gguf_block_types()) supported += fmt::format(", {}", b.ggml_name);
      throw Error(fmt::format("'{}': tensor '{}' has ggml type {} ({}), not supported ({} are)", path, name,
                              ggml_type_name(t.type), t.type, supported));
    }
    std::uint64_t numel = 1;
    for (auto d : dims) numel *= d;
    std::uint64_t bytes = 0;
    if (is_gguf_block(dtype)) {  // whole blocks along ne[0], as ggml requires
      const auto block = static_cast<std::uint64_t>(gguf_block_elems(dtype));
      if (dims[0] % block != 0)
        throw Error(fmt::format("'{}': tensor '{}' of type {} has rows of {} weights, not a multiple of its {}-weight block",
                                path, name, ggml_type_name(t.type), dims[0], block));
      bytes = numel / block * static_cast<std::uint64_t>(gguf_block_bytes(dtype));
    } else {
      bytes = dense_bytes(dtype, numel);
    }
    if (t.offset % alignment != 0)
      throw Error(fmt::format("'{}': tensor '{}' offset {} is not aligned to {}", path, name, t.offset, alignment));
    if (t.offset > data_size || bytes > data_size - t.offset)
      throw Error(fmt::format("'{}': truncated GGUF file: tensor '{}' needs data bytes [{}, {}) but only {} exist", path,
                              name, t.offset, t.offset + bytes, data_size));
    return file->data() + data_start + t.offset;
  };
  auto mat = [&](const std::string& name, int rows, int cols) {
    DType dt;
    const std::byte* p = tensor(name, {static_cast<std::uint64_t>(cols), static_cast<std::uint64_t>(rows)}, dt);
    if (!is_gguf_block(dt)) return wb.matrix(dt, p, rows, cols);
    const Matrix packed{dt, rows, cols, p};  // in place: blocks need no alignment beyond bytes
    if (!options.weight_dtype) return packed;
    return dequantized_copy(wb, packed, *options.weight_dtype);
  };
  auto vec = [&](const std::string& name, int n) {
    DType dt;
    const std::byte* p = tensor(name, {static_cast<std::uint64_t>(n)}, dt);
    if (is_gguf_block(dt))
      throw Error(fmt::format("'{}': tensor '{}' is {}; vectors (norms, biases) must be F32, F16 or BF16", path, name, dtype_name(dt)));
    return wb.vector(dt, p, static_cast<std::size_t>(n));
  };
  ModelWeights& w = model->weights;
  w.token_embedding = mat("token_embd.weight", c.vocab_size, c.dim);
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    LayerWeights& lw = w.layers[static_cast<std::size_t>(l)];
    lw.attn_norm = vec(p + "attn_norm.weight", c.dim);
    lw.wq = mat(p + "attn_q.weight", c.q_dim(), c.dim);
    lw.wk = mat(p + "attn_k.weight", c.kv_dim(), c.dim);
    lw.wv = mat(p + "attn_v.weight", c.kv_dim(), c.dim);
    lw.wo = mat(p + "attn_output.weight", c.dim, c.q_dim());
    if (c.attention_bias) {
      lw.bq = vec(p + "attn_q.bias", c.q_dim());
      lw.bk = vec(p + "attn_k.bias", c.kv_dim());
      lw.bv = vec(p + "attn_v.bias", c.kv_dim());
    }
    lw.ffn_norm = vec(p + "ffn_norm.weight", c.dim);
    lw.w_gate = mat(p + "ffn_gate.weight", c.hidden_dim, c.dim);
    lw.w_up = mat(p + "ffn_up.weight", c.hidden_dim, c.dim);
    lw.w_down = mat(p + "ffn_down.weight", c.dim, c.hidden_dim);
  }
  w.final_norm = vec("output_norm.weight", c.dim);
  if (!c.tied_embeddings) w.classifier = mat("output.weight", c.vocab_size, c.dim);
  // LLaMA-3 rope scaling is stored as per-pair frequency divisors.
  std::vector<float> rope_factors;
  if (infos.count("rope_freqs.weight")) rope_factors = vec("rope_freqs.weight", c.head_dim / 2);
  model->storage.push_back(file);
  finalize_model(*model, path, rope_factors);

  if (options.tokenizer_path.empty())
    if (std::optional<TokenizerVocab> v = vocab_of(header)) model->tokenizer = make_vocab_tokenizer(std::move(*v));
  return model;
}

std::string read_gguf_string(const std::string& path, const std::string& key) {
  auto file = MappedFile::open(path);
  return parse_header(*file).string(key);
}

TokenizerVocab read_gguf_vocab(const std::string& path) {
  auto file = MappedFile::open(path);
  std::optional<TokenizerVocab> v = vocab_of(parse_header(*file));
  if (!v) throw Error(fmt::format("'{}': the GGUF file has no tokenizer (tokenizer.ggml.tokens)", path));
  return std::move(*v);
}

}  // namespace qmeter::engine
