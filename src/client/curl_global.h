#pragma once
// libcurl's process-wide initialization, done once for every handle the client module makes
// (curl_global_init is not thread-safe and must not run per handle).
namespace qmeter::client {
void ensure_curl_global_init();
}  // namespace qmeter::client
