// Connection rate from inside a guest without a process per request:
// N sequential HTTP/1.0 GETs, each on a new TCP connection (connect, send
// the request, read to the server's close, close). Prints the seconds taken.
// Built static on the host by bench/network.sh and shared into the guest,
// so the busybox root needs nothing more.
//
// Usage: conn_loop IPV4 PORT PATH N
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// One request on its own connection; the bytes of the answer, or -1.
static long one_request(const struct sockaddr_in* server, const char* request) {
  static char buf[65536];
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return -1;
  long total = 0;
  ssize_t n = -1;
  if (connect(s, (const struct sockaddr*)server, sizeof *server) == 0 &&
      write(s, request, strlen(request)) == (ssize_t)strlen(request)) {
    while ((n = read(s, buf, sizeof buf)) > 0) total += n;
  }
  close(s);
  return n == 0 ? total : -1;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: conn_loop IPV4 PORT PATH N\n");
    return 2;
  }
  struct sockaddr_in server = {0};
  server.sin_family = AF_INET;
  server.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
    fprintf(stderr, "conn_loop: not an IPv4 address: %s\n", argv[1]);
    return 2;
  }
  char request[512];
  snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[3], argv[1]);
  int n = atoi(argv[4]);
  double start = seconds_now();
  for (int i = 0; i < n; ++i) {
    if (one_request(&server, request) <= 0) {
      perror("conn_loop: request");
      return 1;
    }
  }
  printf("%.4f\n", seconds_now() - start);
  return 0;
}
