#include "parallel/route.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mentor_kd::dist {

RouteResult local_address_toward(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return {"", "cannot resolve '" + host + "': " + gai_strerror(rc)};
  std::string last_error = "no address for '" + host + "'";
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      last_error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    const bool ok =
        connect(fd, a->ai_addr, a->ai_addrlen) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
    if (!ok) last_error = "no route to '" + host + "': " + std::strerror(errno);
    close(fd);
    if (!ok) continue;
    char buf[INET6_ADDRSTRLEN] = {0};
    const void* src = local.ss_family == AF_INET6
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
    if (inet_ntop(local.ss_family, src, buf, sizeof(buf)) == nullptr) {
      last_error = std::string("inet_ntop: ") + std::strerror(errno);
      continue;
    }
    freeaddrinfo(found);
    return {buf, ""};
  }
  freeaddrinfo(found);
  return {"", last_error};
}

}  // namespace mentor_kd::dist
