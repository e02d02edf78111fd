// `moat pause --to-disk` and its restore (proto/message.h: pause, quiesce):
// the VM's state goes to memory.state in the sandbox directory through
// QEMU's migration stream, then QEMU and the shim end; a later shim starts
// QEMU with the same devices waiting for that state and feeds it the file.
//
// Saving, step by step (each failure undoes what was done and answers the
// client with why; the sandbox then runs on as before):
//   1. refuse what cannot be saved: volumes (vhost-user-fs devices hold
//      state in their backend, which QEMU cannot migrate), a sandbox that is
//      removed when it stops, one already stopping or saving;
//   2. a paused guest runs again (the agent must answer), and the agent is
//      asked to quiesce: from then on the shim sends it nothing, and its
//      `quiesced` is its last frame, so the channel is at a frame boundary
//      in both directions with nothing in flight;
//   3. QEMU stops the vCPUs and writes its migration stream into
//      memory.state.tmp (a descriptor handed over the monitor), at full
//      speed (QEMU's default limit is 32 MiB/s); when the guest's RAM is
//      the shim's memfd, the stream leaves it out (x-ignore-shared);
//   4. on QEMU's `completed`: fsync; the RAM, if left out, copied sparse to
//      memory.ram (fsync, rename); rename to memory.state, fsync the
//      directory, answer `ok`, and end QEMU (its disks were flushed when the
//      migration stopped the VM).
//
// A restore with a RAM file loads only the devices' state: the sandbox's
// own RAM file is read back into a fresh memfd, a memory snapshot's shared
// one is mapped private (VmSpec::ram_file). One without loads QEMU's whole
// stream into QEMU's own memory.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "proto/text.h"
#include "shim/shim.h"
#include "util/fsync_path.h"
#include "util/positional_io.h"
#include "util/write_file_atomic.h"
#include "util/zero_block.h"
#include "vm/runtime_files.h"

namespace moat::shim {
namespace {

// The agent answers a quiesce once what it holds is sent: at most its 8 MiB
// outbox, which a busy TCG guest sends in well under this.
constexpr auto kQuiesceWait = std::chrono::seconds(20);
// Writing the stream: the guest's touched memory at disk speed.
constexpr auto kMigrateWait = std::chrono::seconds(300);
// QEMU's migration speed limit, in bytes per second: none that matters.
constexpr std::uint64_t kNoBandwidthLimit = 1ull << 40;
constexpr char kStateFdName[] = "moat-state";

std::string tmp_of(const std::string& path) { return path + ".tmp"; }

// QEMU reports a migration's progress as MIGRATION events once asked to.
// x-ignore-shared leaves RAM mapped shared out of the stream (a memory
// snapshot's RAM, which the shim copies itself); capabilities outlast a
// migration, so every save and restore sets it either way.
proto::Json migration_capabilities(bool ram_apart) {
  return {{"capabilities", proto::Json::array({{{"capability", "events"}, {"state", true}},
                                              {{"capability", "x-ignore-shared"}, {"state", ram_apart}}})}};
}

// Copies the pages of `from` that hold data to the same offsets of `to`, up
// to `size`: only what was ever written is read (SEEK_DATA), and of that
// only pages with a byte set are written, so `to` is as sparse as the
// memory, and its holes read as the zeros they were. Returns the bytes
// written.
Result<std::uint64_t> copy_pages_with_data(int from, const std::string& from_name, int to,
                                           const std::string& to_name, off_t size) {
  constexpr std::size_t kPage = 4096;
  constexpr std::size_t kChunk = 1 << 20;
  std::vector<char> buf(kChunk);
  std::uint64_t written = 0;
  for (off_t at = 0; at < size;) {
    off_t data = ::lseek(from, at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;
    if (data < 0) return errno_error("seeking in " + from_name);
    off_t hole = std::min<off_t>(::lseek(from, data, SEEK_HOLE), size);
    if (hole < 0) return errno_error("seeking in " + from_name);
    for (off_t chunk = data; chunk < hole; chunk += static_cast<off_t>(kChunk)) {
      std::size_t n = static_cast<std::size_t>(std::min<off_t>(static_cast<off_t>(kChunk), hole - chunk));
      MOAT_TRY(pread_fully(from, buf.data(), n, chunk, "reading " + from_name));
      // Runs of pages with data, each written at once.
      for (std::size_t page = 0; page < n;) {
        std::size_t len = std::min(kPage, n - page);
        if (all_zero(buf.data() + page, len)) {
          page += len;
          continue;
        }
        std::size_t end = page + len;
        while (end < n && !all_zero(buf.data() + end, std::min(kPage, n - end))) end += std::min(kPage, n - end);
        MOAT_TRY(pwrite_fully(to, buf.data() + page, end - page, chunk + static_cast<off_t>(page), "writing " + to_name));
        written += end - page;
        page = end;
      }
    }
    at = hole;
  }
  return written;
}

}  // namespace

// A save to disk killed half-way left its temporary files, or a RAM file
// renamed into place without the state that goes with it (the state is
// renamed last): none of it is a saved VM.
void Shim::remove_unfinished_save() {
  ::unlink(tmp_of(memory_state_path(cfg_.dir)).c_str());
  ::unlink(tmp_of(memory_ram_path(cfg_.dir)).c_str());
  if (::access(memory_state_path(cfg_.dir).c_str(), F_OK) != 0) {
    ::unlink(memory_ram_path(cfg_.dir).c_str());
    ::unlink(shared_ram_path(cfg_.dir).c_str());
  }
}

void Shim::save_to_disk(Client& c, const std::string& path, bool end_after, const std::string& ram_path,
                        bool resume_on_leave) {
  auto refuse = [&](const char* code, const std::string& why) {
    send_to_client(c, proto::make_error_message(proto::kControlStream, code, why, false));
  };
  if (stopping_) return refuse("ESHUTDOWN", "the sandbox is stopping");
  if (saving_) return refuse("EBUSY", "the sandbox is already being saved to disk");
  if (!cfg_.volumes.empty())
    return refuse("EOPNOTSUPP",
                  "a sandbox with volumes cannot be paused to disk: QEMU cannot save the state of its virtio-fs "
                  "devices (pause it in memory instead)");
  if (end_after && (cfg_.remove_dir_on_exit || cfg_.stop_when_owner_leaves))
    return refuse("EINVAL", "a sandbox that is removed when it stops cannot be paused to disk");
  if (!agent_fd_) return refuse("EIO", "the guest's agent channel is closed");
  // Never through a link a client could have planted.
  UniqueFd file(::open(tmp_of(path).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file) return refuse("EIO", "cannot create " + tmp_of(path) + ": " + std::strerror(errno));

  saving_.emplace();
  saving_->client = c.id;
  saving_->was_paused = paused_;
  saving_->file = std::move(file);
  saving_->path = path;
  saving_->end_after = end_after;
  saving_->resume_on_leave = resume_on_leave;
  if (guest_ram_) saving_->ram_path = ram_path;
  saving_->started = Clock::now();
  saving_->deadline = Clock::now() + kQuiesceWait;
  log("saving the VM's state to " + path + ": quiescing the guest's agent");
  auto quiesce = [this] {
    send_to_agent(proto::make_message(proto::kControlStream, proto::msg::kQuiesce));
    agent_quiet_ = true;  // nothing more goes to the agent until a hello
  };
  if (!paused_) return quiesce();
  monitor_.execute("cont", [this, quiesce](Result<proto::Json> done) {
    if (!saving_) return;
    if (!done) return fail_save("QEMU could not run the paused guest to quiesce it: " + done.error().message);
    quiesce();
  });
}

void Shim::on_agent_quiesced() {
  if (!saving_ || saving_->step != SaveStep::kQuiescing) return;
  saving_->step = SaveStep::kMigrating;
  saving_->deadline = Clock::now() + kMigrateWait;
  auto failed = [this](const char* what) {
    return [this, what](Result<proto::Json> done) {
      if (saving_ && !done) fail_save(std::string(what) + ": " + done.error().message);
    };
  };
  // In order on the one channel; a failure of any ends the save, and the
  // ones after it fail too (or do nothing once saving_ is gone).
  monitor_.execute("stop", failed("QEMU could not stop the vCPUs"));
  saving_->vcpus_stopped = true;
  monitor_.execute("migrate-set-capabilities", migration_capabilities(!saving_->ram_path.empty()),
                   failed("QEMU refused the migration settings"));
  monitor_.execute("migrate-set-parameters", {{"max-bandwidth", kNoBandwidthLimit}},
                   failed("QEMU refused the migration speed"));
  monitor_.execute("getfd", {{"fdname", kStateFdName}}, failed("QEMU did not take the state file"),
                   saving_->file.get());
  monitor_.execute("migrate", {{"uri", std::string("fd:") + kStateFdName}},
                   failed("QEMU could not save the VM's state"));
}

// QEMU's MIGRATION events, while saving or restoring.
void Shim::on_migration_status(const std::string& status) {
  if (restoring_) {
    if (status == "completed") {
      restoring_->completed = true;
      restoring_->loaded = Clock::now();
    } else if (status == "failed" || status == "cancelled") {
      restoring_->failure = "QEMU could not restore the saved state (" + status + ")";
    }
    return;
  }
  if (!saving_ || saving_->step != SaveStep::kMigrating) return;
  if (status == "completed") return finish_save();
  if (status != "failed" && status != "cancelled") return;
  monitor_.execute("query-migrate", [this, status](Result<proto::Json> info) {
    std::string why = "QEMU's migration " + status;
    if (info && info->is_object() && info->contains("error-desc") && (*info)["error-desc"].is_string())
      why += ": " + proto::lossy_utf8((*info)["error-desc"].get<std::string>().substr(0, 512));
    fail_save(why);
  });
}

void Shim::finish_save() {
  std::string final_path = saving_->path;
  std::string tmp = tmp_of(final_path);
  if (::fsync(saving_->file.get()) != 0) return fail_save("syncing " + tmp + ": " + std::strerror(errno));
  struct stat st {};
  ::fstat(saving_->file.get(), &st);
  saving_->file.reset();
  // The vCPUs stand still: the RAM is as the devices' state has it.
  if (!saving_->ram_path.empty()) {
    if (Status copied = copy_guest_ram(saving_->ram_path); !copied) return fail_save(copied.error().message);
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    return fail_save("renaming " + tmp + ": " + std::strerror(errno));
  std::string parent = final_path.substr(0, final_path.rfind('/'));
  if (auto synced = fsync_path(parent.empty() ? "/" : parent); !synced) log("warning: " + synced.error().message);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - saving_->started).count();
  log("saved to " + final_path + ": " + std::to_string(st.st_size >> 20) + " MiB in " + std::to_string(ms) +
      " ms");
  if (auto it = clients_.find(saving_->client); it != clients_.end())
    send_to_client(*it->second, proto::make_message(proto::kControlStream, proto::msg::kOk));
  bool end_after = saving_->end_after;
  bool lease = saving_->resume_on_leave && !saving_->was_paused;
  ClientId saver = saving_->client;
  saving_.reset();
  if (!end_after) {
    // The VM stays stopped where it was saved, the agent quiet, until a
    // resume runs both again: a paused sandbox like any other; or until the
    // saver leaves, when it asked for that.
    mark_paused(true);
    if (lease) {
      resume_on_leave_ = saver;
      if (!clients_.count(saver)) resume_after_departed_saver();
    }
    return;
  }
  saved_ = true;
  // The state is complete and QEMU flushed its disks when the migration
  // stopped the VM: nothing of it is needed any more.
  stopping_ = true;
  finish(true, kSavedToDiskReason);
  qemu_->signal(SIGKILL);
  killed_ = true;
  stop_deadline_ = Clock::now() + std::chrono::milliseconds(kKillGraceMs);
}

void Shim::fail_save(const std::string& why) {
  if (!saving_) return;
  log("saving the VM's state failed: " + why);
  saving_->file.reset();
  ::unlink(tmp_of(saving_->path).c_str());
  if (!saving_->ram_path.empty()) ::unlink(tmp_of(saving_->ram_path).c_str());
  if (auto it = clients_.find(saving_->client); it != clients_.end())
    send_to_client(*it->second, proto::make_error_message(proto::kControlStream, "EIO",
                                                          "saving the VM's state failed: " + why, false));
  bool stopped = saving_->vcpus_stopped;
  bool was_paused = saving_->was_paused;
  saving_.reset();
  // The guest runs as before (or stays paused if it was), and the agent's
  // quiet ends with a hello.
  if (stopped && !was_paused) monitor_.execute("cont", [](Result<proto::Json>) {});
  if (!stopped && was_paused) monitor_.execute("stop", [](Result<proto::Json>) {});
  agent_quiet_ = false;
  send_host_hello(/*restored=*/false);
}

void Shim::check_save_deadline() {
  if (!saving_ || Clock::now() < saving_->deadline) return;
  if (saving_->step == SaveStep::kQuiescing) {
    fail_save("the guest's agent did not quiesce within " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kQuiesceWait).count()) + " s");
  } else {
    monitor_.execute("migrate_cancel", [](Result<proto::Json>) {});
    fail_save("QEMU did not finish saving within " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kMigrateWait).count()) + " s");
  }
}

// Restoring (during the boot): QEMU waits (-incoming defer) with the state
// file at `state_fd`; events tell when it has read it all (or failed; a
// failed load also ends QEMU, with its reason in qemu.log).
Status Shim::start_restore(int state_fd) {
  restoring_.emplace();
  log("restoring the VM from " + cfg_.restore_from);
  auto failed = [this](const char* what) {
    return [this, what](Result<proto::Json> done) {
      if (restoring_ && !done && restoring_->failure.empty())
        restoring_->failure = std::string(what) + ": " + done.error().message;
    };
  };
  monitor_.execute("migrate-set-capabilities", migration_capabilities(!cfg_.restore_ram.empty()),
                   failed("QEMU refused the migration settings"));
  monitor_.execute("migrate-incoming", {{"uri", "fd:" + std::to_string(state_fd)}},
                   failed("QEMU could not read the saved state"));
  return ok_status();
}

Status Shim::prepare_guest_ram() {
  bool restoring_ram = !cfg_.restore_ram.empty() && !cfg_.restore_from.empty();
  // A memory snapshot's RAM, which the sandbox's siblings map too.
  if (restoring_ram && cfg_.restore_ram_shared) {
    cfg_.vm.ram_file = cfg_.restore_ram;
    MOAT_ASSIGN_OR_RETURN(cfg_.vm.ram_open_preload, vm::find_read_only_ram_preload());
    return ok_status();
  }
  // A sandbox removed when it stops is never the source of a warm fork, and
  // QEMU's own memory boots it faster: anonymous memory gets transparent
  // huge pages, a memfd's is faulted in 4 KiB at a time (moat run -- true
  // took ~100 ms longer of ~1 s on TCG; bench/results/pause-2026-12-07.md).
  // Its memory snapshots still work, with the RAM in the stream.
  if (cfg_.remove_dir_on_exit && !cfg_.keep_ram_apart) return ok_status();
  // A stream that holds the RAM loads into QEMU's own memory: QEMU reads
  // every page it is sent, zero ones included, and a memfd would allocate
  // each (a 256 MiB guest took 1.1 s to restore and held all 256 MiB).
  if (!cfg_.restore_from.empty() && !restoring_ram) return ok_status();
  guest_ram_.reset(::memfd_create("moat-guest-ram", MFD_CLOEXEC));
  if (!guest_ram_) return errno_error("memfd_create for the guest's RAM");
  const off_t size = static_cast<off_t>(cfg_.vm.memory_mib) << 20;
  if (::ftruncate(guest_ram_.get(), size) != 0) return errno_error("sizing the guest's RAM");
  if (!restoring_ram) return ok_status();
  // The sandbox's own RAM saved by pause --to-disk goes back into a memfd,
  // so that it can be saved apart again (a file mapped private could not).
  UniqueFd saved(::open(cfg_.restore_ram.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!saved) return errno_error("the saved RAM " + cfg_.restore_ram);
  struct stat st {};
  if (::fstat(saved.get(), &st) != 0) return errno_error("the saved RAM " + cfg_.restore_ram);
  if (st.st_size != size)
    return make_error("the saved RAM " + cfg_.restore_ram + " holds " + std::to_string(st.st_size) +
                          " bytes where the guest has " + std::to_string(size),
                      EINVAL);
  auto started = Clock::now();
  MOAT_ASSIGN_OR_RETURN(auto copied, copy_pages_with_data(saved.get(), cfg_.restore_ram, guest_ram_.get(),
                                                          "the guest's RAM", size));
  log("read " + std::to_string(copied >> 20) + " MiB of saved RAM in " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()) + " ms");
  return ok_status();
}

Status Shim::copy_guest_ram(const std::string& path) {
  auto started = Clock::now();
  std::string tmp = tmp_of(path);
  // Readable by others: the QEMU of each sandbox restored from it opens it
  // as its own jail user (the snapshot's directory keeps others out).
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0444));
  if (!out) return errno_error("creating " + tmp);
  auto fail = [&](Status st) {
    ::unlink(tmp.c_str());
    return st;
  };
  const off_t size = static_cast<off_t>(cfg_.vm.memory_mib) << 20;
  auto written = copy_pages_with_data(guest_ram_.get(), "the guest's RAM", out.get(), tmp, size);
  if (!written) return fail(written.error());
  if (::ftruncate(out.get(), size) != 0) return fail(errno_error("sizing " + tmp));
  if (::fsync(out.get()) != 0) return fail(errno_error("syncing " + tmp));
  out.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(errno_error("renaming " + tmp));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  log("copied the guest's RAM to " + path + ": " + std::to_string(*written >> 20) + " MiB of data in " +
      std::to_string(ms) + " ms");
  return ok_status();
}

}  // namespace moat::shim
