// Stream-id routing between many clients and the one agent channel. Each
// client numbers its streams as it likes; the router gives every client
// stream a guest-wide id that is never reused, and maps replies back.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace moat::shim {

using ClientId = std::uint64_t;

class StreamRouter {
 public:
  static constexpr std::size_t kMaxStreamsPerClient = 256;

  // Guest id for a client's stream, creating the mapping if needed. Empty
  // when the client has too many open streams.
  std::optional<std::uint32_t> to_guest(ClientId client, std::uint32_t client_stream);

  // The guest id of an open client stream, without creating one.
  std::optional<std::uint32_t> find_guest(ClientId client, std::uint32_t client_stream) const;

  // Where a guest stream's frames go, if anywhere.
  std::optional<std::pair<ClientId, std::uint32_t>> to_client(std::uint32_t guest_stream) const;

  // Forgets one stream (it ended) or every stream of a client (it left);
  // the latter returns the guest ids that were still open.
  void end_guest_stream(std::uint32_t guest_stream);
  std::vector<std::uint32_t> drop_client(ClientId client);

  // The client-side ids of a client's open streams.
  std::vector<std::uint32_t> client_streams(ClientId client) const;

  std::size_t open_streams() const { return guest_.size(); }

 private:
  std::uint32_t next_guest_ = 1;
  std::map<std::pair<ClientId, std::uint32_t>, std::uint32_t> client_;
  std::map<std::uint32_t, std::pair<ClientId, std::uint32_t>> guest_;
  std::map<ClientId, std::size_t> per_client_;
};

}  // namespace moat::shim
