// Named volumes through the C ABI (moat/volumes.h).
#include "capi/handles.h"
#include "moat/json.h"
#include "moat/volumes.h"

using namespace moat::capi;

extern "C" {

int moat_volume_create(const char* name, const char* const* labels, char** volume_json, moat_error** err) {
  return guarded(err, [&] {
    if (name == nullptr) return fail(EINVAL, "volume create: no name given", err);
    auto l = labels_of(labels, "label");
    if (!l) return fail(l.error(), err);
    auto v = moat::create_volume(name, *l);
    if (!v) return fail(v.error(), err);
    return give_string(moat::to_json_text(*v), volume_json, err);
  });
}

int moat_volume_inspect(const char* name, char** volume_json, moat_error** err) {
  return guarded(err, [&] {
    if (name == nullptr) return fail(EINVAL, "volume inspect: no name given", err);
    auto v = moat::inspect_volume(name);
    if (!v) return fail(v.error(), err);
    return give_string(moat::to_json_text(*v), volume_json, err);
  });
}

int moat_volume_list(char** volumes_json, moat_error** err) {
  return guarded(err, [&] {
    auto list = moat::list_volumes();
    if (!list) return fail(list.error(), err);
    return give_string(moat::to_json_array_text(*list), volumes_json, err);
  });
}

int moat_volume_remove(const char* name, int force, moat_error** err) {
  return guarded(err, [&] {
    if (name == nullptr) return fail(EINVAL, "volume remove: no name given", err);
    return done(moat::remove_volume(name, force != 0), err);
  });
}

}  // extern "C"
