/* Logging in NCCL's style: `host:pid:tid NVLAR LEVEL message`, filtered by NVLAR_DEBUG and
 * written to standard output or NVLAR_DEBUG_FILE. Thread-safe; each line is written whole. */
#ifndef NVLAR_LOG_H
#define NVLAR_LOG_H

enum nvlar_log_level {
  NVLAR_LOG_NONE = 0,
  NVLAR_LOG_WARN = 1,
  NVLAR_LOG_INFO = 2,
  NVLAR_LOG_TRACE = 3,
};

/* The level chosen by NVLAR_DEBUG (the index into its choice list matches the enum). */
enum nvlar_log_level nvlar_log_level(void);

/* Writes one line. Every byte of the message that is not printable ASCII is written as \xHH
 * and a line longer than 1023 bytes ends in "...", so that no value taken from the
 * environment or from a file can split a log line, forge another, or send escape sequences to
 * a terminal (however the caller formatted it). */
void nvlar_log(enum nvlar_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define NVLAR_WARN(...) nvlar_log(NVLAR_LOG_WARN, __VA_ARGS__)
#define NVLAR_INFO(...)                                                                      \
  do {                                                                                       \
    if (nvlar_log_level() >= NVLAR_LOG_INFO) nvlar_log(NVLAR_LOG_INFO, __VA_ARGS__);         \
  } while (0)
/* TRACE costs one predictable branch; it stays compiled in so that users can turn it on. */
#define NVLAR_TRACE(...)                                                                     \
  do {                                                                                       \
    if (__builtin_expect(nvlar_log_level() >= NVLAR_LOG_TRACE, 0))                           \
      nvlar_log(NVLAR_LOG_TRACE, __VA_ARGS__);                                               \
  } while (0)

#endif
