// moat-shim --read-root diff|export|layer --upper-fd N --lower-fd M
//
// Reads a sandbox's root from its two disks (src/root_view/) in a process
// of its own, for libmoat (sandbox/root_reader.h): the upper disk was written
// by the guest, and libext2fs parses it. The process opens what it reads
// through the descriptors it was given, gives up every capability, and runs
// under a seccomp allow-list with no file-opening call at all, so a parser
// bug the guest's disk reaches can do no more than write wrong answers to
// its pipe, which libmoat reads as untrusted.
//
// Output on stdout. diff: one JSON object a line, {"kind": "A"|"C"|"D",
// "path": PATH} (PATH a string, or {"hex": ...} when not UTF-8). export: the
// merged root as a pax tar (root_view/root_export.h). layer: the upper as
// an uncompressed OCI layer tar (root_view/upper_layer.h). Errors: one line on
// stderr and exit status 1.
#pragma once

namespace moat::shim {

int run_root_reader(int argc, char** argv);

}  // namespace moat::shim
