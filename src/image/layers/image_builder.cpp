#include "image/layers/image_builder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "image/erofs/spool.h"
#include "util/temp_output.h"
#include "image/layers/tar_reader.h"
#include "util/unique_fd.h"

namespace moat::image {
namespace {

Result<std::string> apply_layer_file(LayerApplier& applier, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("open " + path);
  MOAT_ASSIGN_OR_RETURN(auto reader, TarReader::open_fd(fd.get()));
  return applier.apply(*reader);
}

}  // namespace

Result<BuildResult> build_erofs_image(const std::vector<std::string>& layer_files,
                                      const std::string& output, const BuildOptions& options) {
  if (!options.expected_diff_ids.empty() &&
      options.expected_diff_ids.size() != layer_files.size()) {
    return make_error("expected " + std::to_string(options.expected_diff_ids.size()) +
                          " layers, got " + std::to_string(layer_files.size()),
                      EINVAL);
  }
  MOAT_ASSIGN_OR_RETURN(Spool spool, Spool::create(options.tmp_dir));
  FsTree tree;
  LayerApplier applier(tree, spool, options.limits);
  BuildResult result;
  for (std::size_t i = 0; i < layer_files.size(); ++i) {
    auto diff_id = apply_layer_file(applier, layer_files[i]);
    if (!diff_id.ok()) return diff_id.error().wrap("layer " + std::to_string(i + 1));
    if (!options.expected_diff_ids.empty() && *diff_id != options.expected_diff_ids[i]) {
      return make_error("layer " + std::to_string(i + 1) + ": diff_id " + *diff_id +
                            " does not match the config's " + options.expected_diff_ids[i],
                        EBADMSG);
    }
    result.diff_ids.push_back(std::move(*diff_id));
  }
  result.layers = applier.stats();
  MOAT_ASSIGN_OR_RETURN(TempOutput out, TempOutput::create(output));
  MOAT_ASSIGN_OR_RETURN(result.erofs, write_erofs(tree, spool, out.fd()));
  MOAT_TRY(out.commit());
  return result;
}

}  // namespace moat::image
