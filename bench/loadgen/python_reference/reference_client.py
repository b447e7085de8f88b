#!/usr/bin/env python3
"""Reference load generator of the kind Python users write (vLLM benchmark_serving style).

One shared aiohttp.ClientSession, a constant-rate arrival loop that sleeps until each
request's scheduled time and then starts one task per request, each task streaming
/v1/completions over SSE. It exists to be compared with `qmeter bench serve` against the
same mock server (see compare.sh); it is deliberately plain: default asyncio event loop,
no uvloop, no orjson, no process pool.

Metrics use the same names and meanings as qmeter's results JSON:
  send lag  = actual send time (just before the POST) - scheduled time, over every request sent
  TTFT      = first chunk with a generated token - scheduled time, over completed requests
  duration  = first scheduled time -> last end time (s)
  request_throughput = completed / duration
Percentiles interpolate linearly between order statistics (numpy's default), as qmeter does.
"""

import argparse
import asyncio
import json
import math
import sys
import time

import aiohttp

DEFAULT_PROMPT = ("The quick brown fox jumps over the lazy dog while seven "
                  "small birds sing loudly in the tall green trees")  # 16 words


class Record:
    __slots__ = ("scheduled", "sent", "first_token", "end", "ok", "error", "detail", "tokens")

    def __init__(self, scheduled):
        self.scheduled = scheduled
        self.sent = 0.0
        self.first_token = 0.0
        self.end = 0.0
        self.ok = False
        self.error = ""   # qmeter's error kind names where one fits
        self.detail = ""  # exception text, for the report
        self.tokens = 0


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    pos = (len(v) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


async def send_one(session, url, payload, rec, timeout):
    rec.sent = time.perf_counter()
    try:
        async with session.post(url, json=payload, timeout=timeout) as resp:
            if resp.status != 200:
                rec.error = "http_status"
                rec.detail = f"HTTP {resp.status}"
                await resp.read()
                return
            done = False
            async for raw in resp.content:  # StreamReader iterates line by line
                line = raw.strip()
                if not line or not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    rec.error = "malformed_response"
                    rec.detail = data[:80].decode(errors="replace")
                    return
                if "error" in chunk:
                    rec.error = "server_error"
                    rec.detail = str(chunk["error"])[:120]
                    return
                choices = chunk.get("choices") or []
                if choices and choices[0].get("text"):
                    rec.tokens += 1
                    if rec.first_token == 0.0:
                        rec.first_token = time.perf_counter()
            if not done:
                rec.error = "connection_dropped"
                rec.detail = "stream ended before [DONE]"
                return
            rec.ok = True
    except asyncio.TimeoutError:
        rec.error = "timeout"
    except aiohttp.ClientConnectorError as e:
        rec.error = "connect_failed"
        rec.detail = str(e)[:160]
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as e:
        rec.error = "connection_dropped"
        rec.detail = f"{type(e).__name__}: {e}"[:160]
    except Exception as e:  # noqa: BLE001 - a benchmark records every failure, it does not crash
        rec.error = "unknown"
        rec.detail = f"{type(e).__name__}: {e}"[:160]
    finally:
        rec.end = time.perf_counter()


async def run(args):
    url = args.base_url.rstrip("/") + "/v1/completions"
    payload = {
        "model": args.model,
        "prompt": args.prompt,
        "max_tokens": args.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=args.max_connections)
    interval = 1.0 / args.rate
    records = []
    tasks = []
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        for i in range(args.num_prompts):
            scheduled = start + i * interval
            # Sleep until the scheduled time; when behind, sleep(<=0) still yields to the tasks once.
            await asyncio.sleep(scheduled - time.perf_counter())
            rec = Record(scheduled)
            records.append(rec)
            tasks.append(asyncio.create_task(send_one(session, url, payload, rec, timeout)))
        await asyncio.gather(*tasks)
    return records


def summarize(records, args, wall_s):
    completed = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    first_scheduled = min(r.scheduled for r in records)
    ends = [r.end for r in records if r.end > 0]
    duration = (max(ends) - first_scheduled) if ends else 0.0
    lag = [(r.sent - r.scheduled) * 1e3 for r in records if r.sent > 0]
    ttft = [(r.first_token - r.scheduled) * 1e3 for r in completed if r.first_token > 0]
    e2el = [(r.end - r.scheduled) * 1e3 for r in completed]
    by_kind, examples = {}, {}
    for r in failed:
        by_kind[r.error] = by_kind.get(r.error, 0) + 1
        if r.detail and r.error not in examples:
            examples[r.error] = r.detail
    # Peak in-flight requests (send -> end), ends first at equal instants, as qmeter counts it.
    edges = sorted([(r.sent, 1) for r in records if r.sent > 0 and r.end >= r.sent] +
                   [(r.end, -1) for r in records if r.sent > 0 and r.end >= r.sent])
    peak = cur = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    return {
        "client": "python-asyncio-aiohttp",
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
        "base_url": args.base_url,
        "model_id": args.model,
        "request_rate": args.rate,
        "num_prompts": args.num_prompts,
        "max_connections": args.max_connections,
        "completed": len(completed),
        "failed": len(failed),
        "failed_by_kind": by_kind,
        "failure_examples": examples,
        "duration": duration,
        "wall_s": wall_s,
        "request_throughput": len(completed) / duration if duration > 0 else 0.0,
        "max_concurrent_requests": peak,
        "mean_send_lag_ms": sum(lag) / len(lag) if lag else float("nan"),
        "p50_send_lag_ms": percentile(lag, 50),
        "p90_send_lag_ms": percentile(lag, 90),
        "p99_send_lag_ms": percentile(lag, 99),
        "p50_ttft_ms": percentile(ttft, 50),
        "p99_ttft_ms": percentile(ttft, 99),
        "p50_e2el_ms": percentile(e2el, 50),
        "p99_e2el_ms": percentile(e2el, 99),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True, help="http://HOST:PORT")
    ap.add_argument("--model", default="qmeter-mock")
    ap.add_argument("--rate", type=float, required=True, help="requests/s, constant spacing")
    ap.add_argument("--num-prompts", type=int, default=1000)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("--max-connections", type=int, default=1024, help="TCPConnector limit")
    ap.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, s")
    ap.add_argument("--output-json", help="write the summary here (also printed to stdout)")
    args = ap.parse_args()
    if args.rate <= 0 or args.num_prompts <= 0:
        ap.error("--rate and --num-prompts must be positive")

    t0 = time.perf_counter()
    records = asyncio.run(run(args))
    out = summarize(records, args, time.perf_counter() - t0)
    text = json.dumps(out, indent=2)
    if args.output_json:
        with open(args.output_json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
