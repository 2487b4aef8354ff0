// twinctl: the operator CLI for twinserve.
//
//   twinctl [--server=HOST:PORT] COMMAND [ARGS] [FLAGS]
//
// Exit codes: 0 success, 1 the server refused or failed, 2 bad usage.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include "client/twinctl_common.h"

namespace twinserve {
namespace twinctl {
namespace {

using Command = std::function<int(TwinClient&, const Args&)>;

const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"health", [](TwinClient& c, const Args&) { return Health(c); }},
      {"register", Register},
      {"register-variant", RegisterVariant},
      {"list", [](TwinClient& c, const Args&) { return List(c); }},
      {"show", Show},
      {"unregister", Unregister},
      {"batching", Batching},
      {"infer", Infer},
      {"calibrate", Calibrate},
      {"sets", Sets},
      {"delete-set", DeleteSet},
      {"quantize", Quantize},
      {"jobs", Jobs},
      {"watch", Watch},
      {"cancel", Cancel},
      {"report", Report},
      {"policy", Policy},
      {"promote", Promote},
      {"rollback", Rollback},
      {"history", History},
      {"compare", Compare},
  };
  return *commands;
}

int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  if (args.Has("help") || args.positional.empty()) {
    std::fputs(kUsage, args.Has("help") ? stdout : stderr);
    return args.Has("help") ? 0 : 2;
  }
  auto command = Commands().find(args.positional[0]);
  if (command == Commands().end()) {
    return Usage("unknown command '" + args.positional[0] + "'");
  }
  const char* env = std::getenv("TWINSERVE_SERVER");
  auto env_or_empty = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  auto connection =
      LoadConnection(args.Get("token", TokenFromEnvironment()),
                     args.Get("tls_ca", env_or_empty("TWINSERVE_TLS_CA")),
                     args.Get("tls_cert", env_or_empty("TWINSERVE_TLS_CERT")),
                     args.Get("tls_key", env_or_empty("TWINSERVE_TLS_KEY")),
                     args.Get("tls_server_name", ""));
  if (!connection.ok()) {
    return Usage(std::string(connection.status().message()));
  }
  TwinClient client(args.Get("server", env && *env ? env : "127.0.0.1:8001"),
                    64 << 20, *connection);
  return command->second(client, args);
}

}  // namespace
}  // namespace twinctl
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::twinctl::Main(argc, argv); }
