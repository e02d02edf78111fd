// The server's routes: a method and a path pattern ("/v1/sandboxes/{id}")
// to a handler. The table is data, so `moat serve --routes` can print it
// and the tests check it against docs/openapi.yaml.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "server/http_types.h"

namespace moat::server {

struct Route {
  enum class Body {
    kNone,     // no body expected (a sent one must be empty)
    kWhole,    // read whole into Request::body, up to the body limit
    kStream,   // read to EOF from Request::body_fd, any size
  };
  std::string method;
  std::string pattern;
  Body body = Body::kNone;
  bool websocket = false;  // the answer is an upgrade (Response::websocket)
  Handler handler;
  // The handler checks who is asking itself (the E2B front end's API keys
  // and access tokens) instead of the server's bearer token.
  bool own_auth = false;
};

class Router {
 public:
  void add(Route route);
  // The route for a method and path, its {names} filled into `params`;
  // nullptr if none. `path_known` is set when the path has routes but not
  // for this method (405 rather than 404).
  const Route* match(const std::string& method, const std::string& path,
                     std::map<std::string, std::string>& params, bool& path_known) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// "/a/b%20c" → "/a/b c"; nullopt for a bad escape or a NUL.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space = false);
// "a=1&b=x%20y" → {a: 1, b: "x y"}; nullopt for a bad escape.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view text);
// Fills req.path (decoded, absolute) and req.query from req.target; what is
// wrong with the target if it cannot (nothing is matched against it then).
std::optional<std::string> split_target(Request& req);

}  // namespace moat::server
