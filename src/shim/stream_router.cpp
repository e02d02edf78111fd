#include "shim/stream_router.h"

namespace moat::shim {

std::optional<std::uint32_t> StreamRouter::to_guest(ClientId client, std::uint32_t client_stream) {
  auto key = std::make_pair(client, client_stream);
  if (auto it = client_.find(key); it != client_.end()) return it->second;
  if (per_client_[client] >= kMaxStreamsPerClient) return std::nullopt;
  // Ids are not reused, so a late frame of an ended stream can never reach
  // a newer stream. 0 is the control stream.
  std::uint32_t id = next_guest_++;
  if (next_guest_ == 0) next_guest_ = 1;
  client_[key] = id;
  guest_[id] = key;
  per_client_[client]++;
  return id;
}

std::optional<std::uint32_t> StreamRouter::find_guest(ClientId client, std::uint32_t client_stream) const {
  auto it = client_.find(std::make_pair(client, client_stream));
  if (it == client_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::pair<ClientId, std::uint32_t>> StreamRouter::to_client(std::uint32_t guest_stream) const {
  auto it = guest_.find(guest_stream);
  if (it == guest_.end()) return std::nullopt;
  return it->second;
}

void StreamRouter::end_guest_stream(std::uint32_t guest_stream) {
  auto it = guest_.find(guest_stream);
  if (it == guest_.end()) return;
  client_.erase(it->second);
  if (--per_client_[it->second.first] == 0) per_client_.erase(it->second.first);
  guest_.erase(it);
}

std::vector<std::uint32_t> StreamRouter::client_streams(ClientId client) const {
  std::vector<std::uint32_t> out;
  for (const auto& [key, guest] : client_)
    if (key.first == client) out.push_back(key.second);
  return out;
}

std::vector<std::uint32_t> StreamRouter::drop_client(ClientId client) {
  std::vector<std::uint32_t> open;
  for (auto it = client_.begin(); it != client_.end();) {
    if (it->first.first == client) {
      open.push_back(it->second);
      guest_.erase(it->second);
      it = client_.erase(it);
    } else {
      ++it;
    }
  }
  per_client_.erase(client);
  return open;
}

}  // namespace moat::shim
