// `moat image save`: images from the store into one archive.
//
//   --format oci     an OCI image layout tar: oci-layout, index.json (one
//                    entry per name, annotated with io.containerd.image.name
//                    = the full reference and org.opencontainers.image.ref.name
//                    = its tag), blobs/sha256/<hex>
//   --format docker  the same plus Docker's manifest.json (Config, RepoTags,
//                    Layers as blobs/sha256 paths): the OCI-layout form of
//                    docker-archive that docker >= 25 writes, which docker
//                    load and skopeo both read
//
// Only the platform manifest of each image goes in (an index the image was
// pulled through names platforms the store does not have), so a loaded
// copy's digest is that manifest's. Blobs are copied as stored (pulled
// layers stay compressed) and re-hashed on the way out; a blob that no
// longer matches its digest fails the save. The bytes depend only on the
// images and names: entries in a fixed order, mtime 0, uid/gid 0, no
// user or group names, pax headers only where ustar cannot hold a value.
#pragma once

#include <string>
#include <vector>

#include "image/store/image_store.h"
#include "util/result.h"

namespace moat::image {

enum class ArchiveFormat { kOci, kDocker };

Result<ArchiveFormat> parse_archive_format(const std::string& text);

// Writes the archive of `refs` (references or digests the store knows) to
// `out_fd`. Holds the store lock shared while it reads.
Status save_image_archive(ImageStore& store, const std::vector<std::string>& refs,
                          ArchiveFormat format, int out_fd);

}  // namespace moat::image
