#pragma once
// The `embedded` backend kind: `qmeter serve` (server::InferenceServer) in this process on a free
// loopback port. It lives in exec, not in server, because it adapts the spec's backend options to
// the server's: the HTTP server itself depends on engine, quant and net only.
namespace qmeter::exec {

// Adds "embedded" to the backend registry (idempotent: a second call replaces the same factory).
void register_embedded_backend();

}  // namespace qmeter::exec
