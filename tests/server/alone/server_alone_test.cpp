// The HTTP inference server linked on its own: this binary links qmeter_server and nothing else of
// qmeter (no backend, no spec: the embedded backend adapter lives in exec), so it stops linking
// if the server grows a dependency on the study layer again. It serves a synthetic model and
// answers a raw HTTP request.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "qmeter/server/inference_server.h"

namespace {

// One GET over a plain socket; the whole reply (the server closes after `Connection: close`).
std::string http_get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return reply;
}

}  // namespace

TEST(ServerAlone, ServesASyntheticModelWithoutTheStudyLayer) {
  qmeter::server::ServeOptions o;
  o.model = "synthetic:tiny";
  o.port = 0;
  o.served_model_name = "alone";
  qmeter::server::InferenceServer server(o);
  server.start();
  ASSERT_GT(server.port(), 0);
  const std::string models = http_get(server.port(), "/v1/models");
  EXPECT_EQ(models.rfind("HTTP/1.1 200", 0), 0u) << models;
  EXPECT_NE(models.find("\"alone\""), std::string::npos) << models;
  EXPECT_EQ(http_get(server.port(), "/health").rfind("HTTP/1.1 200", 0), 0u);
}
