// mmap_writer PATH TEXT: puts TEXT into PATH through a shared mapping, says
// "written" and waits to be killed, the mapping still open. Its bytes are
// then only dirty pages in the guest's page cache (nothing wrote them back:
// no msync, no munmap, no close of a mapped file), which is what a stop
// that kills the VM must flush first.
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  size_t n = strlen(argv[2]);
  int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || n == 0 || ftruncate(fd, (off_t)n) != 0) return 1;
  char* p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 1;
  close(fd);
  memcpy(p, argv[2], n);
  if (write(1, "written\n", 8) != 8) return 1;
  for (;;) pause();
}
