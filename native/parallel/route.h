// Which local address reaches a peer: the source address the kernel's routing
// table picks for a connection to it.
//
// Gloo binds its pairs to one local address and publishes it through the
// store. c10d's default device takes the address the *hostname* resolves to,
// which on many machines (Debian's 127.0.1.1 line, containers mapping the
// hostname to 127.0.0.1) is loopback: every rank then advertises 127.x and
// ranks on other hosts cannot connect. The address that routes to MASTER_ADDR
// is the one every rank can reach it from, which is what a multi-node job needs.
// No libtorch here: plain sockets.
#pragma once

#include <string>

namespace mentor_kd::dist {

struct RouteResult {
  std::string address;  // numeric local address (IPv4 or IPv6); empty on failure
  std::string error;    // why not, when address is empty
};

// Resolves `host` (name or numeric) and asks the kernel which local address a
// UDP socket connected to it would use. Sends nothing: connect() on a UDP
// socket only fixes the route.
RouteResult local_address_toward(const std::string& host, int port);

}  // namespace mentor_kd::dist
