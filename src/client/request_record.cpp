#include "qmeter/client/request_record.h"

namespace qmeter::client {

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone: return "none";
    case ErrorKind::kHttpStatus: return "http_status";
    case ErrorKind::kConnectFailed: return "connect_failed";
    case ErrorKind::kConnectionDropped: return "connection_dropped";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kMalformedResponse: return "malformed_response";
    case ErrorKind::kServerError: return "server_error";
    case ErrorKind::kCancelled: return "cancelled";
  }
  return "unknown";
}

}  // namespace qmeter::client
