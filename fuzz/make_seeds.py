#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (checked in; rerun after changing it).

Every seed is hand-made and tiny: a valid input shrunk to the minimum that still reaches the
parser's deep paths (a 1-layer model of width 8, a 2-line trace), plus the corrupt cases the unit
tests use. Multi-file inputs join their files with SEP (fuzz_support.h kFileSeparator).
"""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SEP = b"\n--qmeter-fuzz-file--\n"


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def f32s(values):
    return b"".join(struct.pack("<f", v) for v in values)


def ramp(n, scale=0.01):
    return [((i * 37) % 17 - 8) * scale for i in range(n)]


# ---- client: SSE streams and chunks -----------------------------------------------------------
CHUNKS = [
    '{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":5,"completion_tokens":0}}',
    '{"id":"c1","choices":[{"index":0,"delta":{"content":" tok0 tok1"},"finish_reason":null}],"usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2}}',
    '{"id":"c1","choices":[{"index":0,"delta":{"content":"a\\nb\\u00e9\\"q\\\\ \\/"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":3}}',
    '{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4}}',
    ' { "choices" : [ { "text" : "x" , "logprobs" : { "tokens" : [ "a" , "b" ] , "content" : null } } , { "text" : "other" } ] } ',
    '{"choices":[{"text":"\u00e9 raw utf-8"}]}',
    '{"choices":[{"text":"\\ud83d\\ude00"}]}',
    '{"choices":[{"text":"y","logprobs":{"content":[{"t":[1,2,{"z":null}]},{}],"tokens":["q"]}}]}',
    '{"choices":[{"delta":{"reasoning":"r","content":null}}]}',
    '{"choices":[{"delta":{"reasoning_content":"think"}}]}',
    '{"choices":[{"message":{"content":"m"}}]}',
    '{"choices":[{"delta":"notobj","message":{"content":"m2"}}]}',
    '{"choices":{"0":1},"usage":null}',
    '{"usage":{"prompt_tokens":1.0,"completion_tokens":2.5}}',
    '{"choices":[{"text":"d","text":"dup"}]}',
    '{"error":null,"choices":[{"text":"z","finish_reason":"stop"}]}',
    '{"choices":[{"text":"t"}]} trailing',
    '{"object":"error","message":"bad"}',
    '{"choices":["s"]}',
    '{"choices":[{"text":"bad escape \\q"}]}',
    '{"error":{"message":"boom","type":"internal"}}',
    '{"error":"boom","error_type":"x"}',
    '{not json',
    '[1,2]',
    '{"id":"x","object":"chunk"}',
    '{"choices":[{"text":"ab","logprobs":{"tokens":["a","b"],"token_logprobs":[-1,-2]}}]}',
    '{"choices":[{"delta":{"content":"xyz"},"logprobs":{"content":[{"token":"x"},{"token":"y"},{"token":"z"}]}}]}',
]
for i, c in enumerate(CHUNKS):
    put("chunk_scan", f"chunk{i:02d}.json", c)

streams = {
    "every_field": b"\xef\xbb\xbf: a comment\r\ndata: {\"a\":1}\r\n\r\nevent: error\ndata: line1\ndata:  line2\n\n"
                   b"id: 7\ndata:no-space\r\rretry: 100\nevent: ignored-no-data\n\n: ping\n\ndata\n\n"
                   b"data: [DONE]\r\n\r\ndata: unfinished",
    "chat_usage": "".join(f"data: {c}\n\n" for c in CHUNKS[:4]) + "data: [DONE]\n\n",
    "completions": "".join(f"data: {c}\r\n\r\n" for c in CHUNKS[4:8]) + "data: [DONE]\r\n\r\n",
    "garbage": "data: x\nthis is garbage\nfoo: bar\n\n",
    "error_event": "event: error\ndata: {\"error\":\"boom\"}\n\n",
}
for name, s in streams.items():
    put("sse_stream", name, s)

# ---- OpenAI requests: mock and serve (first byte: route) ---------------------------------------
REQUESTS = [
    (0, {"model": "m", "prompt": "hello world", "max_tokens": 4, "stream": True,
         "stream_options": {"include_usage": True, "continuous_usage_stats": True}, "ignore_eos": True}),
    (0, {"prompt": [1, 2, 3], "max_tokens": 2, "logprobs": 2, "echo": True, "temperature": 0}),
    (0, {"prompt": "a b", "max_tokens": 3, "stop": ["b", "\n"], "top_p": 0.5, "top_k": 3, "seed": 7}),
    (1, {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
         "max_completion_tokens": 3, "stream": True, "logprobs": True, "top_logprobs": 1}),
    (1, {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 2, "n": 1}),
    (2, {"prompt": "hello", "add_special_tokens": False}),
    (2, {"messages": [{"role": "user", "content": "hi"}]}),
    (3, {"tokens": [1, 5, 7]}),
    (0, {"prompt": "x", "n": 2}),
    (0, {"prompt": "x", "max_tokens": -1}),
    (0, {"prompt": "x", "max_tokens": "lots"}),
    (1, {"messages": []}),
]
for i, (route, body) in enumerate(REQUESTS):
    data = bytes([route]) + json.dumps(body).encode()
    put("serve_request", f"req{i:02d}", data)
    put("mock_request", f"req{i:02d}", data)
put("serve_request", "bad_json", b"\x00{\"prompt\": ")
put("mock_request", "bad_json", b"\x01{\"messages\": [")

# ---- replies to the quality scorer (first byte: which call) ------------------------------------
REPLIES = [
    (0, {"count": 3, "max_model_len": 64, "tokens": [1, 15043, 3186]}),
    (1, {"object": "list", "data": [{"id": "m", "max_model_len": 128}]}),
    (1, {"count": 1, "max_model_len": 32, "tokens": [1]}),
    (2, {"choices": [{"text": "Hello world!", "logprobs": {"tokens": ["Hello", " world", "!"],
                      "token_logprobs": [None, -1.5, -0.25], "top_logprobs": [None, {" world": -1.5, " there": -2}, {"!": -0.25}],
                      "text_offset": [0, 5, 11]}}], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}),
    (3, {"choices": [{"text": " 2\nQ:"}]}),
    (4, {"choices": [{"text": "x", "logprobs": {"token_logprobs": [None, -1], "top_logprobs": [None, {"a": -1}]}}],
         "usage": {"completion_tokens": 1}, "tokens": [1, 2]}),
    (0, {"tokens": "not a list"}),
    (0, {"tokens": [1e300]}),
]
for i, (call, body) in enumerate(REPLIES):
    put("tokenize_reply", f"reply{i:02d}", bytes([call]) + json.dumps(body).encode())

# ---- Prometheus text ---------------------------------------------------------------------------
put("prometheus", "vllm", """# HELP vllm:num_requests_running Number of requests running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 3
vllm:num_requests_waiting{model_name="m"} 0
# HELP vllm:kv_cache_usage_perc KV-cache usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.25 1700000000000
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.01",model_name="m"} 1
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4
vllm:time_to_first_token_seconds_sum{model_name="m"} 0.5
vllm:time_to_first_token_seconds_count{model_name="m"} 4
# TYPE rpc_duration summary
rpc_duration{quantile="0.5"} NaN
rpc_duration_sum 1.7560473e+07
rpc_duration_count 2693
escaped{path="C:\\\\dir\\\\",msg="a \\"quote\\"\\nline"} -Inf
qmeter:tokens_total 12
""")
for i, bad in enumerate(["metric{a=\"1\" 2\n", "metric{a=\"1\"} notanumber\n", "# TYPE x nonsense\n", "{a=\"b\"} 1\n",
                         "metric{a=\"unterminated} 1\n", "m 1 2 3\n", "m{a=\"1\",a=\"2\"} 1\n"]):
    put("prometheus", f"bad{i}", bad)

# ---- YAML study specs --------------------------------------------------------------------------
put("study_spec", "matrix.yaml", """study: {name: demo}
models:
  - {name: tiny, path: "synthetic:tiny"}
methods:
  - fp32
  - {name: w4a16-rtn, group_size: 64}
parallelism: {tp: [1, 2]}
workloads:
  - name: chat
    dataset: random
    input_len: 32
    output_len: 16
    num_prompts: 20
    rates: [1, 2, inf]
  - name: closed
    concurrencies: [4]
  - name: knee
    search: {slo: interactive, lo: 4, hi: 256, iterations: 4}
slos:
  interactive: {ttft_ms: 200, tpot_ms: 50}
  batch: {e2e_ms: 5000}
quality:
  - {task: "perplexity:x.txt", ppl_mode: window, limit: 24}
  - {task: kl, baseline: fp32, text: "x.txt", limit: 24}
energy: {source: model, interval_ms: 20}
backend: {kind: embedded, options: {threads: 1, max_num_seqs: 32}}
executor:
  slurm: {max_parallel: 2}
repeats: 2
seed: 7
""")
put("study_spec", "env.yaml", "study: x\nmodels: [\"synthetic:${HOME:-small}\"]\nmethods: [fp32]\nworkloads: [{rates: [1]}]\n")
put("study_spec", "bad_type.yaml", "study: x\nmodels: [a]\nmethods: [fp32]\nworkloads: [{num_prompts: lots, rates: [1]}]\n")
put("study_spec", "bad_rate.yaml", "study: x\nmodels: [a]\nmethods: [fp32]\nworkloads: [{rates: [0, -1]}]\n")
put("study_spec", "unclosed.yaml", "study: {name: x\nmodels: [")
put("study_spec", "anchors.yaml", "study: &s x\nmodels: [*s]\nmethods: [fp32]\nworkloads: [{rates: [1]}]\nrepeat: 1\n")

# ---- datasets ("KIND\n" then the file) ----------------------------------------------------------
def dataset(name, kind, body):
    put("dataset", name, kind.encode() + b"\n" + (body if isinstance(body, bytes) else body.encode()))


dataset("sharegpt", "sharegpt", json.dumps([
    {"id": "a", "conversations": [{"from": "human", "value": "How do I stop updates?"}, {"from": "gpt", "value": "Use the policy editor."},
                                  {"from": "human", "value": "And then?"}, {"from": "gpt", "value": "Reboot."}]},
    {"id": "b", "conversations": [{"from": "gpt", "value": "no human first"}]},
    {"id": "c", "conversations": []}]))
dataset("sharegpt_multiturn", "sharegpt-multiturn", json.dumps([
    {"id": "a", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
                                  {"from": "human", "value": "bye"}, {"from": "gpt", "value": "ok"}]}]))
dataset("jsonl", "jsonl", '{"prompt": "one two", "max_tokens": 3, "reference": "x"}\n\n{"prompt": "three"}\n')
dataset("azure", "azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n")
dataset("azure_seconds", "trace", "TIMESTAMP,ContextTokens,GeneratedTokens\n0.5,12,4\n1.25,7,3\n")
dataset("gsm8k", "gsm8k", '{"question": "1+1?", "answer": "so #### 2"}\n{"question": "2+2?", "answer": "#### 4"}\n')
dataset("mooncake", "mooncake", '{"timestamp": 0, "input_length": 12, "output_length": 5, "hash_ids": [0, 1]}\n'
                                '{"timestamp": 27, "input_length": 9, "output_length": 3, "hash_ids": [0, 2]}\n')
dataset("burstgpt", "burstgpt", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                                "5,ChatGPT,47,18,65,Conversation log\n45,GPT-4,108,23,131,API log\n")
dataset("bad_jsonl", "jsonl", '{"prompt": 5}\n{"prompt": "ok", "max_tokens": -3}\nnot json\n')
dataset("bad_azure", "azure", "TIMESTAMP,ContextTokens\n2023-11-16,abc\n")

# ---- tokenizers --------------------------------------------------------------------------------
def byte_level_alphabet():
    out, nxt = [], 256
    for b in range(256):
        kept = ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        out.append(chr(b if kept else nxt))
        if not kept:
            nxt += 1
    return out

alpha = byte_level_alphabet()
byte_level = {"model": {"type": "BPE", "vocab": {**{c: i for i, c in enumerate(alpha)}, "he": 256, "ll": 257, "hell": 258},
                        "merges": ["h e", "l l", "he ll"]},
              "added_tokens": [{"id": 259, "content": "<|im_start|>", "special": True},
                               {"id": 260, "content": "<|im_end|>", "special": True}],
              "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                  {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": False},
                  {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]},
              "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                                                                           {"Sequence": {"id": "A", "type_id": 0}}],
                                 "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [259], "tokens": ["<|im_start|>"]}}},
              "decoder": {"type": "ByteLevel"}}
spm_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}, "\u2581": 259, "a": 260, "\u2581a": 261}
metaspace = {"model": {"type": "BPE", "vocab": spm_vocab, "merges": [["\u2581", "a"]], "byte_fallback": True, "unk_token": "<unk>",
                       "fuse_unk": True},
             "added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
                              {"id": 2, "content": "</s>", "special": True}],
             "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                                {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
             "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
             "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                          {"type": "ByteFallback"}, {"type": "Fuse"},
                                                          {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}
tok_config = {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True}
put("hf_tokenizer", "byte_level.json", json.dumps(byte_level))
put("hf_tokenizer", "metaspace.json", json.dumps(metaspace).encode() + SEP + json.dumps(tok_config).encode())
put("hf_tokenizer", "bad_unk.json", json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "unk_token": "<unk>"}}))
put("hf_tokenizer", "bad_merge.json", json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}))
put("hf_tokenizer", "bad_type.json", json.dumps({"model": {"type": "Unigram", "vocab": []}}))
for i, text in enumerate(["Hello world", "caf\u00e9 \u4f60\u597d 1234 \U0001F642", "<s>hi</s><|im_start|>x<|im_end|>", "\xff\xfe bad utf8",
                          "  \n\n\t tabs and   spaces  ", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]):
    for flags in (0, 1, 2, 3 + 0x40, 4 + 0xC0):
        put("tokenizer_encode", f"text{i}_{flags:02x}", bytes([flags]) + text.encode("utf-8", "surrogateescape"))

# ---- models: width 8, 1 layer, vocab 8 ---------------------------------------------------------
DIM, HID, LAYERS, HEADS, KV, VOCAB, SEQ = 8, 16, 1, 2, 2, 8, 4
llama2c_header = struct.pack("<7i", DIM, HID, LAYERS, HEADS, KV, VOCAB, SEQ)
hd = DIM // HEADS
sizes = [VOCAB * DIM, LAYERS * DIM, LAYERS * DIM * DIM, LAYERS * DIM * DIM, LAYERS * DIM * DIM, LAYERS * DIM * DIM,
         LAYERS * DIM, LAYERS * HID * DIM, LAYERS * DIM * HID, LAYERS * HID * DIM, DIM, SEQ * hd // 2, SEQ * hd // 2]
llama2c = llama2c_header + b"".join(f32s(ramp(n)) for n in sizes)
# The tokenizer needs <unk>, BOS, EOS and the 256 byte pieces: its model has vocab 262.
V2 = 262
llama2c_262 = struct.pack("<7i", DIM, HID, LAYERS, HEADS, KV, V2, SEQ) + b"".join(
    f32s(ramp(n)) for n in [V2 * DIM] + sizes[1:])
tok = struct.pack("<i", 8)
pieces = ["<unk>", "\n<s>\n", "\n</s>\n"] + [f"<0x{b:02X}>" for b in range(256)] + [" ", "ab", " a"]
for i, p in enumerate(pieces):
    tok += struct.pack("<fi", -float(i), len(p.encode())) + p.encode()
put("llama2c", "tied_with_tokenizer", llama2c_262 + SEP + tok)
put("llama2c", "tied", llama2c)
untied = struct.pack("<7i", DIM, HID, LAYERS, HEADS, KV, -VOCAB, SEQ) + b"".join(f32s(ramp(n)) for n in sizes) + f32s(ramp(VOCAB * DIM))
put("llama2c", "untied", untied)
put("llama2c", "truncated", llama2c[:200])
put("llama2c", "bad_header", struct.pack("<7i", DIM, HID, LAYERS, 3, KV, VOCAB, SEQ))
put("llama2c", "v1_magic", b"ak42" + llama2c[4:64])
put("llama2c", "bad_tokenizer", llama2c + SEP + struct.pack("<ifi", 8, 0.0, 1000) + b"ab")


def safetensors(tensors):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def hf_config(extra=None):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": DIM, "intermediate_size": HID,
         "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV, "vocab_size": VOCAB,
         "max_position_embeddings": SEQ, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
         "torch_dtype": "float32"}
    c.update(extra or {})
    return json.dumps(c).encode()


def dense(name, rows, cols):
    return (name, "F32", [rows, cols], f32s(ramp(rows * cols)))


def vec(name, n):
    return (name, "F32", [n], f32s([1.0] * n))


LINEARS = [("self_attn.q_proj", DIM, DIM), ("self_attn.k_proj", DIM, DIM), ("self_attn.v_proj", DIM, DIM),
           ("self_attn.o_proj", DIM, DIM), ("mlp.gate_proj", DIM, HID), ("mlp.up_proj", DIM, HID), ("mlp.down_proj", HID, DIM)]


def hf_tensors(linear):
    t = [dense("model.embed_tokens.weight", VOCAB, DIM), vec("model.norm.weight", DIM)]
    p = "model.layers.0."
    t += [vec(p + "input_layernorm.weight", DIM), vec(p + "post_attention_layernorm.weight", DIM)]
    for name, fan_in, fan_out in LINEARS:
        t += linear(p + name, fan_in, fan_out)
    return t


def i32s(n, seed):
    return b"".join(struct.pack("<I", (0x87654321 * (i + seed)) & 0xFFFFFFFF) for i in range(n))


def f16s(n):
    return b"".join(struct.pack("<e", 0.01 * (1 + i % 5)) for i in range(n))


GROUP = 32  # imported groups are a multiple of 32 columns


def gptq_linear(base, fan_in, fan_out):
    groups = fan_in // GROUP
    return [(base + ".qweight", "I32", [fan_in // 8, fan_out], i32s(fan_in // 8 * fan_out, 1)),
            (base + ".qzeros", "I32", [groups, fan_out // 8], i32s(groups * fan_out // 8, 2)),
            (base + ".scales", "F16", [groups, fan_out], f16s(groups * fan_out)),
            (base + ".g_idx", "I32", [fan_in], b"".join(struct.pack("<i", (c * 3 % fan_in) // GROUP) for c in range(fan_in)))]


def awq_linear(base, fan_in, fan_out):
    groups = fan_in // GROUP
    return [(base + ".qweight", "I32", [fan_in, fan_out // 8], i32s(fan_in * fan_out // 8, 3)),
            (base + ".qzeros", "I32", [groups, fan_out // 8], i32s(groups * fan_out // 8, 4)),
            (base + ".scales", "F16", [groups, fan_out], f16s(groups * fan_out))]


dense_st = safetensors(hf_tensors(lambda b, i, o: [dense(b + ".weight", o, i)]))
put("hf_folder", "dense", hf_config() + SEP + dense_st)
put("hf_folder", "dense_bf16_tokenizer", hf_config({"torch_dtype": "bfloat16"}) + SEP + safetensors(
    [(n, "BF16" if len(s) == 2 else d, s, r if len(s) == 1 else b"".join(r[k + 2:k + 4] for k in range(0, len(r), 4)))
     for n, d, s, r in hf_tensors(lambda b, i, o: [dense(b + ".weight", o, i)])]) + SEP + json.dumps(metaspace).encode())
# The quantized seeds need 32-column groups: width 32, FFN 64.
DIM, HID = 32, 64
LINEARS = [("self_attn.q_proj", DIM, DIM), ("self_attn.k_proj", DIM, DIM), ("self_attn.v_proj", DIM, DIM),
           ("self_attn.o_proj", DIM, DIM), ("mlp.gate_proj", DIM, HID), ("mlp.up_proj", DIM, HID), ("mlp.down_proj", HID, DIM)]
put("hf_folder", "gptq", hf_config({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": GROUP, "desc_act": True,
                                                            "checkpoint_format": "gptq"}}) + SEP + safetensors(hf_tensors(gptq_linear)))
put("hf_folder", "awq", hf_config({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": GROUP, "version": "gemm",
                                                           "zero_point": True}}) + SEP + safetensors(hf_tensors(awq_linear)))
put("hf_folder", "bad_config", hf_config({"num_attention_heads": 3}) + SEP + dense_st)
put("hf_folder", "bad_header_len", hf_config() + SEP + struct.pack("<Q", 1 << 40) + b"{}")
put("hf_folder", "bad_offsets", hf_config() + SEP + safetensors([("model.embed_tokens.weight", "F32", [VOCAB, DIM], b"\0" * 8)]))


# ---- GGUF v3 -----------------------------------------------------------------------------------
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors, alignment=32):
    """kvs: list of (key, type, value); tensors: list of (name, dims innermost first, ggml type, raw)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, typ, val in kvs:
        out += gstr(key) + struct.pack("<I", typ)
        if typ == 8:
            out += gstr(val)
        elif typ == 9:
            sub, items = val
            out += struct.pack("<IQ", sub, len(items))
            for it in items:
                out += gstr(it) if sub == 8 else struct.pack({4: "<I", 5: "<i", 6: "<f"}[sub], it)
        else:
            out += struct.pack({4: "<I", 5: "<i", 6: "<f", 7: "<B"}[typ], val)
    data, infos = b"", b""
    for name, dims, typ, raw in tensors:
        data += b"\0" * ((alignment - len(data) % alignment) % alignment)
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", typ, len(data))
        data += raw
    out += infos
    out += b"\0" * ((alignment - len(out) % alignment) % alignment)
    return out + data


def q8_0(n):
    return b"".join(struct.pack("<e", 0.01) + bytes((i * 7 + b) % 256 for i in range(32)) for b in range(n // 32))


def q4_0(n):
    return b"".join(struct.pack("<e", 0.02) + bytes((i * 11 + b) % 256 for i in range(16)) for b in range(n // 32))


def gguf_model(dim, hid, vocab_tokens, linear_type, linear_raw):
    arch = "llama"
    kvs = [("general.architecture", 8, arch), (arch + ".embedding_length", 4, dim), (arch + ".feed_forward_length", 4, hid),
           (arch + ".block_count", 4, 1), (arch + ".attention.head_count", 4, 2), (arch + ".attention.head_count_kv", 4, 2),
           (arch + ".context_length", 4, 16), (arch + ".attention.layer_norm_rms_epsilon", 6, 1e-5),
           (arch + ".rope.freq_base", 6, 10000.0), ("general.alignment", 4, 32),
           ("tokenizer.ggml.model", 8, "llama"), ("tokenizer.ggml.tokens", 9, (8, vocab_tokens)),
           ("tokenizer.ggml.scores", 9, (6, [-float(i) for i in range(len(vocab_tokens))])),
           ("tokenizer.ggml.token_type", 9, (5, [2, 3, 3] + [6] * 256 + [1] * (len(vocab_tokens) - 259))),
           ("tokenizer.ggml.bos_token_id", 4, 1), ("tokenizer.ggml.eos_token_id", 4, 2),
           ("tokenizer.ggml.unknown_token_id", 4, 0), ("tokenizer.ggml.add_bos_token", 7, 1)]
    v = len(vocab_tokens)
    t = [("token_embd.weight", [dim, v], 0, f32s(ramp(dim * v))), ("output_norm.weight", [dim], 0, f32s([1.0] * dim)),
         ("blk.0.attn_norm.weight", [dim], 0, f32s([1.0] * dim)), ("blk.0.ffn_norm.weight", [dim], 0, f32s([1.0] * dim))]
    for name, i, o in [("attn_q", dim, dim), ("attn_k", dim, dim), ("attn_v", dim, dim), ("attn_output", dim, dim),
                       ("ffn_gate", dim, hid), ("ffn_up", dim, hid), ("ffn_down", hid, dim)]:
        t.append((f"blk.0.{name}.weight", [i, o], linear_type, linear_raw(i * o)))
    return gguf(kvs, t)


vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581", "a", "\u2581a"]
put("gguf", "f32", gguf_model(8, 16, vocab, 0, lambda n: f32s(ramp(n))))
put("gguf", "q8_0", gguf_model(32, 32, vocab, 8, q8_0))
put("gguf", "q4_0", gguf_model(32, 32, vocab, 2, q4_0))
put("gguf", "bad_magic", b"GGUX" + struct.pack("<IQQ", 3, 0, 0))
put("gguf", "bad_version", b"GGUF" + struct.pack("<IQQ", 2, 0, 0))
put("gguf", "huge_counts", b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 1 << 60))
put("gguf", "truncated", gguf_model(8, 16, vocab, 0, lambda n: f32s(ramp(n)))[:700])

print("seeds written under", ROOT)
