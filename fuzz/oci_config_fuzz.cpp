// An OCI bundle's config.json and an exec's process.json as moat-runtime
// reads them (src/oci_runtime/bundle_config.h): the engine writes them from
// what its user (or a pod spec) asked, so any bytes either fail with an
// error that names the file or field, or give a config whose every value
// moat then uses is in range: a command, absolute paths, bounded sizes.
//
// Two texts per input: the bytes themselves (syntax, nesting, types), and a
// well-formed config whose values come from the bytes (what mutations of
// raw JSON seldom reach without breaking the text around them).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "oci_runtime/bundle_config.h"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

bool absolute(const std::string& p) { return !p.empty() && p[0] == '/'; }

void check(const moat::Result<moat::oci::BundleConfig>& c) {
  if (!c.ok()) {
    require(!c.error().message.empty() && c.error().code != 0);
    return;
  }
  require(!c->process.args.empty());
  require(absolute(c->process.cwd));
  require(absolute(c->rootfs));
  require(c->memory_mib == 0 || (c->memory_mib >= 64 && c->memory_mib <= 262144));
  require(c->cpus >= 0 && c->cpus <= 64);
  require(c->process.rows > 0 && c->process.cols > 0);
  for (const auto& b : c->binds) require(absolute(b.source) && absolute(b.destination));
  for (const auto& t : c->tmpfs) require(absolute(t.destination));
}

void check_process(const std::string& text) {
  std::vector<std::string> unsupported;
  auto p = moat::oci::parse_process(text, unsupported);
  if (p.ok()) require(!p->args.empty() && absolute(p->cwd));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string raw(reinterpret_cast<const char*>(data), size);
  check(moat::oci::parse_bundle_config(raw, "/nonexistent-bundle"));
  check_process(raw);

  FuzzedDataProvider in(data, size);
  nlohmann::json j;
  j["ociVersion"] = "1.0.2";
  j["process"]["args"] = {in.ConsumeRandomLengthString(64), in.ConsumeRandomLengthString(16)};
  j["process"]["cwd"] = in.ConsumeRandomLengthString(32);
  j["process"]["user"] = {{"uid", in.ConsumeIntegral<std::int64_t>()}, {"gid", in.ConsumeIntegral<std::uint32_t>()}};
  j["process"]["consoleSize"] = {{"height", in.ConsumeIntegral<std::int32_t>()}, {"width", in.ConsumeIntegral<std::int32_t>()}};
  j["root"]["path"] = in.ConsumeRandomLengthString(32);
  j["hostname"] = in.ConsumeRandomLengthString(32);
  j["mounts"] = {{{"destination", in.ConsumeRandomLengthString(32)},
                  {"type", in.ConsumeRandomLengthString(8)},
                  {"source", in.ConsumeRandomLengthString(32)},
                  {"options", {in.ConsumeRandomLengthString(12)}}}};
  j["linux"]["resources"]["memory"]["limit"] = in.ConsumeIntegral<std::int64_t>();
  j["linux"]["resources"]["cpu"] = {{"quota", in.ConsumeIntegral<std::int64_t>()}, {"period", in.ConsumeIntegral<std::int64_t>()}};
  j["annotations"]["io.moat.memory"] = in.ConsumeRandomLengthString(8);
  j["annotations"]["io.moat.cpus"] = in.ConsumeRandomLengthString(4);
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  check(moat::oci::parse_bundle_config(text, "/nonexistent-bundle"));
  check_process(j["process"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return 0;
}
