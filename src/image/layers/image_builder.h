// Builds one EROFS image from an ordered list of layer files: the whole
// "layers -> root filesystem" step, with the result appearing atomically.
//
// The image is written to a temporary file next to `output`, fsynced and
// renamed into place, so a failed or killed build never leaves a partial
// image under the final name. Layer contents are spooled in `tmp_dir`.
#pragma once

#include <string>
#include <vector>

#include "image/erofs/erofs_writer.h"
#include "image/layers/layer_applier.h"
#include "util/result.h"

namespace moat::image {

struct BuildOptions {
  LayerLimits limits;
  std::string tmp_dir = "/tmp";
  // If not empty: the config's rootfs.diff_ids, checked against each layer's
  // uncompressed digest (one per layer, in order).
  std::vector<std::string> expected_diff_ids;
};

struct BuildResult {
  std::vector<std::string> diff_ids;
  LayerStats layers;
  ErofsStats erofs;
};

Result<BuildResult> build_erofs_image(const std::vector<std::string>& layer_files,
                                      const std::string& output, const BuildOptions& options);

}  // namespace moat::image
