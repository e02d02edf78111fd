// The network options of the C ABI and the SDKs, given as JSON text by their
// callers: any bytes either fail with an error naming the field or read as
// options that validate_network() then judges, without a crash, a hang or
// unbounded memory. Both forms are tried: the options and a policy update.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "moat/json.h"
#include "moat/network.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto options = moat::network_options_from_json_text(text);
  if (options.ok()) {
    (void)moat::validate_network(*options);
  } else if (options.error().code != EINVAL || options.error().message.rfind("network", 0) != 0) {
    __builtin_trap();  // every refusal is EINVAL and names the network field
  }
  auto update = moat::network_update_from_json_text(text);
  if (!update.ok() && update.error().code != EINVAL) __builtin_trap();
  return 0;
}
