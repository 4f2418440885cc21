#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "escape.h"
#include "params.h"

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum nvlar_log_level log_level = NVLAR_LOG_WARN;
static FILE *log_file;
static char log_host[64] = "unknown";

/* Expands %h (host name) and %p (pid) in NVLAR_DEBUG_FILE, as NCCL does for NCCL_DEBUG_FILE. */
static void expand_file_name(const char *pattern, char *out, size_t out_size) {
  size_t used = 0;
  for (const char *p = pattern; *p != '\0' && used + 1 < out_size; p++) {
    int written = 0;
    if (p[0] == '%' && p[1] == 'h') {
      written = snprintf(out + used, out_size - used, "%s", log_host);
      p++;
    } else if (p[0] == '%' && p[1] == 'p') {
      written = snprintf(out + used, out_size - used, "%d", (int)getpid());
      p++;
    } else {
      out[used] = *p;
      written = 1;
    }
    if (written < 0 || (size_t)written >= out_size - used) break;
    used += (size_t)written;
  }
  out[used < out_size ? used : out_size - 1] = '\0';
}

static void log_during_init(enum nvlar_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void log_init(void) {
  const struct nvlar_params *params = nvlar_params();
  log_level = (enum nvlar_log_level)params->values[NVLAR_P_DEBUG].number;
  if (gethostname(log_host, sizeof(log_host)) != 0) strcpy(log_host, "unknown");
  log_host[sizeof(log_host) - 1] = '\0';
  char *dot = strchr(log_host, '.');
  if (dot != NULL) *dot = '\0';

  log_file = stdout;
  const char *file_pattern = params->values[NVLAR_P_DEBUG_FILE].text;
  char file_name[4096] = "";
  if (log_level > NVLAR_LOG_NONE && file_pattern[0] != '\0') {
    expand_file_name(file_pattern, file_name, sizeof(file_name));
    FILE *file = fopen(file_name, "w");
    if (file != NULL) log_file = file;
  }
  /* Parameters are parsed before logging exists, so their complaints are reported here. */
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) {
    if (params->values[id].error[0] != '\0') {
      log_during_init(NVLAR_LOG_WARN, "%s", params->values[id].error);
    }
  }
  if (file_name[0] != '\0' && log_file == stdout) {
    char quoted[160];
    log_during_init(NVLAR_LOG_WARN,
                    "NVLAR_DEBUG_FILE: cannot open \"%s\"; logging to standard output",
                    nvlar_quotable(file_name, quoted, sizeof(quoted)));
  }
}

enum nvlar_log_level nvlar_log_level(void) {
  pthread_once(&log_once, log_init);
  return log_level;
}

static void write_line(enum nvlar_log_level level, const char *fmt, va_list args) {
  static const char *const level_names[] = {"NONE", "WARN", "INFO", "TRACE"};
  char message[1024], line[1024];
  int length = vsnprintf(message, sizeof(message), fmt, args);
  if (length < 0) return;
  bool cut = (size_t)length >= sizeof(message);
  nvlar_escape(message, cut ? sizeof(message) - 1 : (size_t)length, false, cut, line, sizeof(line));
  pthread_mutex_lock(&log_lock);
  fprintf(log_file, "%s:%d:%ld NVLAR %s %s\n", log_host, (int)getpid(), (long)syscall(SYS_gettid),
          level_names[level], line);
  fflush(log_file);
  pthread_mutex_unlock(&log_lock);
}

/* For log_init, which runs inside pthread_once and so must not call nvlar_log_level(). */
static void log_during_init(enum nvlar_log_level level, const char *fmt, ...) {
  if (log_level < level) return;
  va_list args;
  va_start(args, fmt);
  write_line(level, fmt, args);
  va_end(args);
}

void nvlar_log(enum nvlar_log_level level, const char *fmt, ...) {
  if (level == NVLAR_LOG_NONE || nvlar_log_level() < level) return;
  va_list args;
  va_start(args, fmt);
  write_line(level, fmt, args);
  va_end(args);
}
