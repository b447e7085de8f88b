#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "qmeter/backend/backend.h"
#include "qmeter/client/http_call.h"
#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"

namespace qmeter::backend {

bool wait_until_ready(const std::string& url, double timeout_s, const std::function<bool()>& alive) {
  const Nanos deadline = steady_now_ns() + s_to_ns(timeout_s);
  client::HttpCaller http("", /*timeout_s=*/2.0);
  while (steady_now_ns() < deadline) {
    if (alive && !alive()) return false;
    if (http.get(url).status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int pick_free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    throw Error("cannot bind a loopback port");
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace qmeter::backend
