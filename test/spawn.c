#include "spawn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void apply_environment(const char *const env[]) {
  for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
    const char *equals = strchr(env[i], '=');
    if (equals == NULL) {
      unsetenv(env[i]);
      continue;
    }
    char name[256];
    size_t length = (size_t)(equals - env[i]);
    if (length >= sizeof(name)) continue;
    memcpy(name, env[i], length);
    name[length] = '\0';
    setenv(name, equals + 1, 1);
  }
}

int nvlar_test_run(char *const argv[], const char *const env[], char *output, size_t size) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  fflush(NULL);
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    apply_environment(env);
    execv(argv[0], argv);
    perror(argv[0]);
    _exit(127);
  }
  close(pipe_fds[1]);
  size_t used = 0;
  char discard[4096];
  for (;;) {
    char *into = used + 1 < size ? output + used : discard;
    size_t room = used + 1 < size ? size - 1 - used : sizeof(discard);
    ssize_t got = read(pipe_fds[0], into, room);
    if (got <= 0) break;
    if (into != discard) used += (size_t)got;
  }
  output[used] = '\0';
  close(pipe_fds[0]);
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

int nvlar_test_count_lines(const char *text, const char *needle) {
  int count = 0;
  const char *line = text;
  while (line != NULL && *line != '\0') {
    const char *end = strchr(line, '\n');
    size_t length = end ? (size_t)(end - line) : strlen(line);
    const char *hit = strstr(line, needle);
    if (hit != NULL && hit < line + length) count++;
    line = end ? end + 1 : NULL;
  }
  return count;
}
