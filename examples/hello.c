/* The smallest program over libmoat's C ABI: boot a sandbox, run a command
 * in it, print what it wrote and how it ended.
 *
 *   cc hello.c -o hello $(pkg-config --cflags --libs moat)     (or -lmoat)
 *   ./hello [IMAGE]                  no IMAGE: the bundled default root
 */
#include <stdio.h>
#include <string.h>

#include <moat/moat.h>

static void print_stdout(void* user_data, const char* data, size_t length) {
  (void)user_data;
  fwrite(data, 1, length, stdout);
}

static int fail(const char* what, moat_error* err) {
  fprintf(stderr, "hello: %s: %s (%s)\n", what, moat_error_message(err), moat_error_kind(err));
  moat_error_free(err);
  return 1;
}

int main(int argc, char** argv) {
  moat_error* err = NULL;
  moat_sandbox_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.image = argc > 1 ? argv[1] : NULL;
  options.ephemeral = 1;   /* gone when the handle closes */
  options.auto_remove = 1;

  moat_sandbox* sandbox = NULL;
  if (moat_sandbox_create(&options, &sandbox, &err) != 0) return fail("create", err);

  const char* command[] = {"sh", "-c", "echo hello from $(uname -s) in moat", NULL};
  moat_exec_options exec;
  memset(&exec, 0, sizeof exec);
  exec.struct_size = sizeof exec;
  exec.argv = command;
  moat_exec_callbacks callbacks;
  memset(&callbacks, 0, sizeof callbacks);
  callbacks.struct_size = sizeof callbacks;
  callbacks.on_stdout = print_stdout;

  moat_exit_status status;
  if (moat_sandbox_exec(sandbox, &exec, &callbacks, -1, &status, &err) != 0) {
    moat_sandbox_close(sandbox);
    return fail("exec", err);
  }
  printf("exit code %d (libmoat %s, ABI %d)\n", status.code, moat_version(), moat_abi_version());
  moat_sandbox_close(sandbox);
  return status.code;
}
