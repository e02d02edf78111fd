// The shim's side of the sandbox network: starting the network thread
// before QEMU, carrying its log lines to the shim's logs, and applying a
// client's policy update.
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "jail/privileges.h"
#include "net/network_settings.h"
#include "proto/exec_log.h"
#include "proto/file_ops.h"
#include "shim_contract/event_table.h"
#include "shim_contract/network_json.h"
#include "store/moat_home.h"
#include "shim/shim.h"
#include "shim_contract/secrets_file.h"

namespace moat::shim {
namespace {

// At most this many lines wait for the loop; a flood past it is counted.
constexpr std::size_t kMaxQueuedNetworkLines = 1000;
constexpr std::chrono::seconds kNetworkEventGap{10};

bool is_denial(const std::string& line) {
  return line.rfind("network: denied ", 0) == 0 || (line.rfind("network: dns: ", 0) == 0 && line.find(" denied") != std::string::npos);
}

std::uint64_t unix_seconds() { return static_cast<std::uint64_t>(::time(nullptr)); }

// Every guest connection is a host socket of the stack: the soft limit of
// open files (often 1024) must not be what refuses connection 1000.
void raise_open_file_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

}  // namespace

Status Shim::start_network(UniqueFd& qemu_end) {
  if (!network_needs_device(cfg_.network)) return ok_status();
  MOAT_ASSIGN_OR_RETURN(auto settings, net::read_network_settings(cfg_.network));
  raise_open_file_limit();
  network_log_wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!network_log_wake_) return errno_error("eventfd");
  MOAT_TRY(watch_network_log());
  MOAT_ASSIGN_OR_RETURN(auto stored, read_secrets(cfg_.dir));
  netstack::NetworkService::Secrets secrets;
  for (auto& s : stored.secrets)
    secrets.bindings.push_back(tls::SecretBinding{std::move(s.name), std::move(s.placeholder), std::move(s.value),
                                                  std::move(s.hosts), s.in_query, s.in_body, s.plain_http});
  if (stored.stop_on_violation) {
    secrets.on_violation = [this](const std::string&) {
      stop_for_secret_violation_.store(true);
      std::uint64_t one = 1;
      [[maybe_unused]] auto w = ::write(network_log_wake_.get(), &one, sizeof one);
    };
  }
  // The network's threads handle the guest's frames and TLS: they need no
  // capability at all, and drop them as they start (capabilities are per
  // thread; the shim's main thread drops its own once QEMU runs).
  auto drop_all = [] { (void)jail::keep_only_capabilities(nullptr, 0); };
  MOAT_ASSIGN_OR_RETURN(network_, netstack::NetworkService::start(
                                      settings, [this](const std::string& line) { network_log(line); }, qemu_end,
                                      std::move(secrets), drop_all));
  return ok_status();
}

Status Shim::watch_network_log() {
  return loop_.add(network_log_wake_.get(), EventLoop::kReadable, [this](EventLoop::Events ev) {
    if (ev & EventLoop::kReadable) drain_network_log();
  });
}

void Shim::network_log(const std::string& line) {
  {
    std::lock_guard<std::mutex> lock(network_log_mu_);
    if (network_log_lines_.size() >= kMaxQueuedNetworkLines) {
      ++network_log_dropped_;
      return;
    }
    network_log_lines_.push_back(line);
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto w = ::write(network_log_wake_.get(), &one, sizeof one);
}

void Shim::drain_network_log() {
  std::uint64_t count;
  [[maybe_unused]] auto r = ::read(network_log_wake_.get(), &count, sizeof count);
  std::vector<std::string> lines;
  std::uint64_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(network_log_mu_);
    lines.swap(network_log_lines_);
    std::swap(dropped, network_log_dropped_);
  }
  if (dropped) lines.push_back("network: " + std::to_string(dropped) + " log lines dropped (too many at once)");
  for (const auto& line : lines) {
    log(line);
    exec_log_.write(proto::exec_log_network(unix_seconds(), line) + "\n");
    if (is_denial(line)) note_network_denial(line);
  }
  flush_network_event(false);
  if (stop_for_secret_violation_.exchange(false))
    begin_stop("a secret's placeholder was sent to a host it is not bound to (--on-secret-violation block-and-stop)");
}

void Shim::note_network_denial(const std::string& line) {
  if (network_event_.empty())
    network_event_ = line.substr(std::string_view("network: ").size());
  else
    ++network_event_more_;
}

// Writes the pending denial event when the last one is old enough (or at
// the end). Best effort: the logs have every line anyway.
void Shim::flush_network_event(bool force) {
  if (network_event_.empty()) return;
  auto now = Clock::now();
  if (!force && last_network_event_ && now - *last_network_event_ < kNetworkEventGap) return;
  std::string reason = network_event_;
  if (network_event_more_) reason += " (and " + std::to_string(network_event_more_) + " more denials)";
  if (auto st = append_shim_event(store::home_of_sandbox_dir(cfg_.dir), cfg_.sandbox_id, kNetworkDeniedEvent, reason); !st)
    log("network: event not recorded: " + st.error().message);
  network_event_.clear();
  network_event_more_ = 0;
  last_network_event_ = now;
}

// A client's `network_update` (proto/message.h): the whole new mode and
// rule list. Answered `ok` once the network thread applies it, so that the
// client stores it only when it holds.
void Shim::handle_network_update(Client& c, const proto::Message& m) {
  auto refuse = [&](const Error& e) {
    send_to_client(c, proto::make_error_message(proto::kControlStream, proto::errno_name(e.code ? e.code : EINVAL),
                                                e.message, false));
  };
  auto update = network_policy_from_json(m.payload);
  if (!update) return refuse(update.error());
  auto policy = net::read_policy(update->mode, update->rules);
  if (!policy) return refuse(policy.error());
  NetworkOptions next = cfg_.network;
  next.mode = update->mode;
  next.rules = update->rules;
  if (!network_ && network_needs_device(next)) {
    return refuse(make_error(
        "the sandbox runs without a network device (it was started with --net none and no --allow); the new policy "
        "applies from its next start",
        ENOTSUP));
  }
  if (network_) network_->update_policy(*policy);
  cfg_.network = std::move(next);
  log("network: policy updated: --net " + std::string(to_string(cfg_.network.mode)) + ", " +
      std::to_string(cfg_.network.rules.size()) + " rules");
  send_to_client(c, proto::make_message(proto::kControlStream, proto::msg::kOk));
}

}  // namespace moat::shim
