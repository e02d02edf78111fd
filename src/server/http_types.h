// What a route handler sees and answers, without Boost: the connection code
// (http_connection.cpp) turns Beast's messages into these and back, so the
// handlers are plain functions over moat's API that units can call.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace moat::server {

class MessageChannel;

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent, query included
  std::string path;    // without the query, percent-decoded
  std::map<std::string, std::string> query;    // decoded; the last of a repeated name
  std::map<std::string, std::string> headers;  // names in lower case
  std::map<std::string, std::string> params;   // the route's {names}
  // The body: text for the routes that take it whole (bounded by the
  // server's body limit), else read to EOF from body_fd (Route::kStreamBody).
  std::string body;
  int body_fd = -1;
  // True once the client closed its connection while the handler ran (a
  // long command's wait uses it to stop).
  std::function<bool()> client_gone;
  // Route::Body::kStream: whether the client sent the whole body (a body_fd
  // that reached EOF early means the client stopped sending).
  std::function<bool()> body_complete;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  const std::string* query_value(const std::string& name) const {
    auto it = query.find(name);
    return it == query.end() ? nullptr : &it->second;
  }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A body of unknown length, sent chunked: run on a thread of its own once
  // the head is sent, writing to `fd` (a pipe to the client) until done. A
  // write that fails (EPIPE: the client left) is the producer's cue to stop.
  std::function<void(int fd)> stream;
  // Routes of kind kWebSocket: run on a thread of its own once the upgrade
  // is done, with the connection's messages, until it returns.
  std::function<void(MessageChannel&)> websocket;
};

// Messages of a WebSocket between a handler's threads and the connection.
// send() blocks while the client has not taken what was sent before (a
// bounded queue: a client that stops reading holds the sender back), and
// fails once the connection is gone. receive() blocks for the next message;
// an empty optional once the client closed or left.
struct WsMessage {
  bool binary = false;
  std::string data;
};
class MessageChannel {
 public:
  virtual ~MessageChannel() = default;
  virtual bool send(WsMessage message) = 0;
  virtual std::optional<WsMessage> receive() = 0;
  // Ends the connection (close frame with `reason`); receive() then ends.
  virtual void close(const std::string& reason) = 0;
};

using Handler = std::function<Response(Request&)>;

}  // namespace moat::server
