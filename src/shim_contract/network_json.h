// The one JSON form of a sandbox's network options (include/moat/network.h),
// used for the `network` object of its record in moat.db, of the shim's
// config.json, and for the payload of the `network_update` control message
// (proto/message.h):
//
//   {"mode": "public",                                   none | public | all
//    "rules": [{"allow": true, "rule": "*.pypi.org:443"}],  in order, as written
//    "hosts": [{"name": "db.test", "address": "host-gateway"}],
//    "dns": "1.1.1.1:53",                                "": the host's resolver
//    "ports": [{"host_ip": "127.0.0.1", "host_port": 8080, "guest_port": 80, "udp": false}],
//    "publish_listening": "0.0.0.0",                     "": off
//    "max_connections": 1024,
//    "egress_bytes_per_second": 0,
//    "tls": {"enabled": false, "ports": [443], "bypass": ["*.pinned.test"],
//            "proxies": ["host.moat.internal:3128"],
//            "upstream_ca_file": "", "ca_certificate_file": "", "ca_key_file": ""}}
//
// Reading checks the form only (types and ranges); validate_network() and
// the shim check what the rules and addresses say.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "moat/network.h"
#include "util/result.h"

namespace moat::shim {

nlohmann::json network_to_json(const NetworkOptions& options);
// A missing field is its default, so a record or config.json written before
// networks were kept (or `{}`) reads as the default NetworkOptions. A field
// of the wrong type or out of range is an error naming it.
Result<NetworkOptions> network_from_json(const nlohmann::json& j);

// What a running sandbox's shim applies from now on: `network_update`'s
// payload {"mode": ..., "rules": [...]}, both fields required.
struct NetworkPolicy {
  NetworkMode mode = NetworkMode::kPublic;
  std::vector<NetworkRule> rules;
};
nlohmann::json network_policy_to_json(const NetworkPolicy& policy);
Result<NetworkPolicy> network_policy_from_json(const nlohmann::json& j);

}  // namespace moat::shim
