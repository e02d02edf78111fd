#include "shim_contract/event_table.h"

#include <time.h>

namespace moat::shim {

Status insert_event(store::SqliteDb& db, const std::string& id, std::string_view kind, const std::string& reason,
                    std::int64_t time) {
  store::Stmt s(db,
                "INSERT INTO events (time, sandbox_id, name, kind, reason) SELECT ?2, id, name, ?3, ?4 "
                "FROM sandboxes WHERE id = ?1");
  MOAT_TRY(s.prepared());
  s.bind(1, id).bind(2, time).bind(3, std::string(kind)).bind(4, reason);
  MOAT_TRY(s.run());
  store::Stmt prune(db, "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1");
  MOAT_TRY(prune.prepared());
  prune.bind(1, kMaxEvents);
  MOAT_TRY(prune.run());
  if (kind != kNetworkDeniedEvent) return ok_status();
  store::Stmt prune_network(db,
                            "DELETE FROM events WHERE kind = ?1 AND seq < (SELECT seq FROM events WHERE kind = ?1 "
                            "ORDER BY seq DESC LIMIT 1 OFFSET ?2)");
  MOAT_TRY(prune_network.prepared());
  prune_network.bind(1, std::string(kNetworkDeniedEvent)).bind(2, kMaxNetworkEvents - 1);
  return prune_network.run();
}

Status append_shim_event(const std::string& moat_home, const std::string& id, std::string_view kind,
                         const std::string& reason) {
  // No schema: the shim never creates moat.db, it only adds to it.
  MOAT_ASSIGN_OR_RETURN(auto db, store::SqliteDb::open(moat_home + "/moat.db", ""));
  store::Transaction tx(*db);
  MOAT_TRY(tx.begin());
  MOAT_TRY(insert_event(*db, id, kind, reason, static_cast<std::int64_t>(::time(nullptr))));
  return tx.commit();
}

}  // namespace moat::shim
