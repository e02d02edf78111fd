// The image store through the C ABI (moat/images.h).
#include "capi/handles.h"
#include "moat/images.h"
#include "moat/json.h"

using namespace moat::capi;

namespace moat::capi {

std::function<void(const PullProgress&)> progress_callback(moat_pull_progress_fn fn, void* user) {
  if (fn == nullptr) return {};
  return [fn, user](const PullProgress& p) {
    moat_pull_progress c{};
    c.struct_size = sizeof c;
    c.layer = p.layer;
    c.layers = p.layers;
    c.digest = p.digest.c_str();
    c.layer_done = p.layer_done;
    c.layer_total = p.layer_total;
    c.layer_complete = p.layer_complete ? 1 : 0;
    c.done = p.done;
    c.total = p.total;
    c.layers_done = p.layers_done;
    fn(user, &c);
  };
}

}  // namespace moat::capi

extern "C" {

int moat_image_pull(const char* ref, const moat_pull_options* given, char** pulled_json, moat_error** err) {
  return guarded(err, [&] {
    auto read = read_struct(given, "moat_pull_options");
    if (!read) return fail(read.error(), err);
    const moat_pull_options& o = *read;
    if (ref == nullptr) return fail(EINVAL, "pull: no image reference given", err);
    moat::PullOptions opts;
    opts.platform = text_or_empty(o.platform);
    opts.insecure_registry = o.insecure_registry != 0;
    if (o.parallel_downloads > 0) opts.parallel_downloads = o.parallel_downloads;
    opts.on_progress = progress_callback(o.on_progress, o.user_data);
    auto pulled = moat::pull_image(ref, opts);
    if (!pulled) return fail(pulled.error(), err);
    return give_string(moat::to_json_text(*pulled), pulled_json, err);
  });
}

int moat_image_list(char** images_json, moat_error** err) {
  return guarded(err, [&] {
    auto images = moat::list_images();
    if (!images) return fail(images.error(), err);
    return give_string(moat::to_json_array_text(*images), images_json, err);
  });
}

int moat_image_inspect(const char* image, char** image_json, moat_error** err) {
  return guarded(err, [&] {
    if (image == nullptr) return fail(EINVAL, "inspect: no image given", err);
    auto details = moat::inspect_image(image);
    if (!details) return fail(details.error(), err);
    return give_string(moat::to_json_text(*details), image_json, err);
  });
}

int moat_image_remove(const char* ref, moat_error** err) {
  return guarded(err, [&] {
    if (ref == nullptr) return fail(EINVAL, "remove: no image given", err);
    return done(moat::remove_image(ref), err);
  });
}

int moat_image_tag(const char* source, const char* target, moat_error** err) {
  return guarded(err, [&] {
    if (source == nullptr || target == nullptr) return fail(EINVAL, "tag: source and target are required", err);
    return done(moat::tag_image(source, target), err);
  });
}

int moat_image_check(const char* const* images, char** checks_json, moat_error** err) {
  return guarded(err, [&] {
    auto checks = moat::check_images(string_list(images));
    if (!checks) return fail(checks.error(), err);
    return give_string(moat::to_json_array_text(*checks), checks_json, err);
  });
}

int moat_image_prune(char** report_json, moat_error** err) {
  return guarded(err, [&] {
    auto report = moat::prune_images();
    if (!report) return fail(report.error(), err);
    return give_string(moat::to_json_text(*report), report_json, err);
  });
}

int moat_image_load(int fd, char** loaded_json, moat_error** err) {
  return guarded(err, [&] {
    if (fd < 0) return fail(EINVAL, "load: no descriptor given", err);
    auto loaded = moat::load_images(fd);
    if (!loaded) return fail(loaded.error(), err);
    return give_string(moat::to_json_array_text(*loaded), loaded_json, err);
  });
}

int moat_image_save(const char* const* images, const char* format, int fd, moat_error** err) {
  return guarded(err, [&] {
    if (fd < 0 || format == nullptr) return fail(EINVAL, "save: a format and a descriptor are required", err);
    auto f = moat::parse_archive_format(format);
    if (!f) return fail(f.error(), err);
    return done(moat::save_images(string_list(images), *f, fd), err);
  });
}

int moat_registry_login(const char* registry, const char* username, const char* password, int insecure,
                        moat_error** err) {
  return guarded(err, [&] {
    if (registry == nullptr || username == nullptr || password == nullptr)
      return fail(EINVAL, "login: a registry, a user name and a password are required", err);
    return done(moat::registry_login(registry, username, password, insecure != 0), err);
  });
}

int moat_registry_logout(const char* registry, moat_error** err) {
  return guarded(err, [&] {
    if (registry == nullptr) return fail(EINVAL, "logout: no registry given", err);
    return done(moat::registry_logout(registry), err);
  });
}

}  // extern "C"
