// TLS from inside a guest, for bench/tls.sh: built static on the host
// (OpenSSL's static libraries) and shared into the guest.
//
//   tls_client handshakes IPV4 PORT NAME N   N fresh connections, each a TCP
//       connect and a full TLS handshake, then closed; prints each one's
//       milliseconds, one a line
//   tls_client get IPV4 PORT NAME PATH       one HTTP/1.0 GET over TLS, the
//       body read to the end; prints the seconds and the bytes
//
// The server's certificate is not checked: the benchmark times the same
// work for an intercepted and a bypassed server, and checking is what the
// VM tests do.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static SSL* open_tls(SSL_CTX* ctx, const struct sockaddr_in* server, const char* name, int* fd_out) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr*)server, sizeof *server) != 0) {
    perror("tls_client: connect");
    exit(1);
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, name);
  if (SSL_connect(ssl) != 1) {
    fprintf(stderr, "tls_client: handshake failed\n");
    ERR_print_errors_fp(stderr);
    exit(1);
  }
  *fd_out = fd;
  return ssl;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: tls_client handshakes IPV4 PORT NAME N | get IPV4 PORT NAME PATH\n");
    return 2;
  }
  struct sockaddr_in server = {0};
  server.sin_family = AF_INET;
  server.sin_port = htons((unsigned short)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &server.sin_addr) != 1) return 2;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  // Every connection a full handshake: no session resumption.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (strcmp(argv[1], "handshakes") == 0) {
    int n = atoi(argv[5]);
    for (int i = 0; i < n; ++i) {
      int fd;
      double start = now();
      SSL* ssl = open_tls(ctx, &server, argv[4], &fd);
      printf("%.3f\n", (now() - start) * 1000);
      SSL_shutdown(ssl);
      SSL_free(ssl);
      close(fd);
    }
    return 0;
  }
  int fd;
  double start = now();
  SSL* ssl = open_tls(ctx, &server, argv[4], &fd);
  char request[512];
  snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[5], argv[4]);
  SSL_write(ssl, request, (int)strlen(request));
  static char buf[1 << 16];
  long total = 0;
  int r;
  while ((r = SSL_read(ssl, buf, sizeof buf)) > 0) total += r;
  printf("%.3f %ld\n", now() - start, total);
  return 0;
}
