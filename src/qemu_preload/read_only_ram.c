// Loaded into QEMU (LD_PRELOAD) when it restores a memory snapshot whose
// RAM file many sandboxes map at once (docs/snapshots.md, "Warm fork").
//
// Each child maps the snapshot's RAM file private (share=off): pages stay
// the page cache's, shared by every child, until a child writes one and
// gets its own copy. QEMU 7.2 opens a RAM file read-write even for such a
// mapping (QEMU 8.1 falls back to read-only on EACCES; 8.2 has readonly=on
// with rom=off). A read-write descriptor of a file shared by many
// sandboxes would let one compromised QEMU change the memory of all the
// others, and QEMU's own discard path punches holes in the file it has
// open. So the one path named by $MOAT_READ_ONLY_RAM is opened read-only:
// a private mapping of a read-only descriptor is writable all the same,
// and the file can then not be changed through it (the jail also binds it
// read-only). Nothing else is touched.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static int read_only_flags(const char* path, int flags) {
  const char* ram = getenv("MOAT_READ_ONLY_RAM");
  if (ram == NULL || path == NULL || strcmp(path, ram) != 0) return flags;
  if ((flags & O_ACCMODE) != O_RDWR || (flags & O_CREAT) != 0) return flags;
  return (flags & ~O_ACCMODE) | O_RDONLY;
}

static mode_t mode_argument(int flags, va_list ap) {
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

typedef int (*open_fn)(const char*, int, ...);
typedef int (*openat_fn)(int, const char*, int, ...);
typedef int (*open_2_fn)(const char*, int);

static void* next(const char* name) { return dlsym(RTLD_NEXT, name); }

#define MOAT_OPEN(name)                                             \
  int name(const char* path, int flags, ...) {                      \
    va_list ap;                                                     \
    va_start(ap, flags);                                            \
    mode_t mode = mode_argument(flags, ap);                         \
    va_end(ap);                                                     \
    open_fn real = (open_fn)next(#name);                            \
    return real(path, read_only_flags(path, flags), mode);          \
  }
#define MOAT_OPENAT(name)                                           \
  int name(int dir, const char* path, int flags, ...) {             \
    va_list ap;                                                     \
    va_start(ap, flags);                                            \
    mode_t mode = mode_argument(flags, ap);                         \
    va_end(ap);                                                     \
    openat_fn real = (openat_fn)next(#name);                        \
    return real(dir, path, read_only_flags(path, flags), mode);     \
  }
// The _FORTIFY_SOURCE entry points: open() with flags the compiler cannot
// see (QEMU's `readonly ? O_RDONLY : O_RDWR`) becomes __open64_2.
#define MOAT_OPEN_2(name)                                           \
  int name(const char* path, int flags) {                           \
    open_2_fn real = (open_2_fn)next(#name);                        \
    return real(path, read_only_flags(path, flags));                \
  }

MOAT_OPEN(open)
MOAT_OPEN(open64)
MOAT_OPENAT(openat)
MOAT_OPENAT(openat64)
MOAT_OPEN_2(__open_2)
MOAT_OPEN_2(__open64_2)
