/* libFuzzer harness of the parsing of every NVLAR_* value (common/params.c) and of how values
 * reach the log (common/log.c). The first byte picks the parameter, the rest is its value, cut
 * at the first NUL as the environment cuts it. Beyond "no crash, no sanitizer report" it checks:
 * an accepted number obeys its table row (range, multiple, choice count, 0/1); a refusal says
 * why; loading the value into every parameter at once keeps each default where refused, with a
 * message that is printable and names the variable; a quoted value is printable, fits, and
 * reads back to the value unless cut with "..."; and a log line of it is written (to
 * /dev/null) without a report. Any broken promise aborts, which libFuzzer reports as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "log.h"
#include "params.h"

#define CHECK(condition)                                                                       \
  do {                                                                                         \
    if (!(condition)) {                                                                        \
      fprintf(stderr, "fuzz_params: broken: %s (line %d)\n", #condition, __LINE__);            \
      abort();                                                                                 \
    }                                                                                          \
  } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* The log's lines go nowhere, at the most verbose level, so that every one is formatted. */
  setenv("NVLAR_DEBUG", "TRACE", 1);
  setenv("NVLAR_DEBUG_FILE", "/dev/null", 1);
  return 0;
}

static int64_t choice_count(const char *choices) {
  int64_t count = 1;
  for (const char *p = choices; *p != '\0'; p++) count += *p == '|';
  return count;
}

static void check_number(const struct nvlar_param_desc *desc, int64_t number) {
  switch (desc->type) {
    case NVLAR_PARAM_BOOL: CHECK(number == 0 || number == 1); break;
    case NVLAR_PARAM_CHOICE: CHECK(number >= 0 && number < choice_count(desc->choices)); break;
    case NVLAR_PARAM_INT:
    case NVLAR_PARAM_SIZE:
      CHECK(number >= desc->min && number <= desc->max);
      CHECK(desc->multiple_of == 0 || number % desc->multiple_of == 0);
      break;
    case NVLAR_PARAM_STRING: CHECK(number == 0); break;
  }
}

static bool printable(const char *text) {
  for (; *text != '\0'; text++) {
    if (*text < 0x20 || *text > 0x7e) return false;
  }
  return true;
}

/* Undoes nvlar_quotable; false if `quoted` is not something it writes. */
static bool unquote(const char *quoted, char *out, size_t out_size) {
  size_t used = 0;
  for (const char *p = quoted; *p != '\0'; used++) {
    if (used + 1 >= out_size) return false;
    if (p[0] != '\\') {
      out[used] = *p++;
    } else if (p[1] == '\\' || p[1] == '"') {
      out[used] = p[1];
      p += 2;
    } else if (p[1] == 'x' && p[2] != '\0' && p[3] != '\0') {
      char hex[3] = {p[2], p[3], '\0'};
      out[used] = (char)strtol(hex, NULL, 16);
      p += 4;
    } else {
      return false;
    }
  }
  out[used] = '\0';
  return true;
}

/* The length of `text` quoted whole: 1 per printable byte but \ and ", 2 for those, 4 for
 * the others (\xHH). */
static size_t quoted_length(const char *text) {
  size_t length = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
    length += *p == '\\' || *p == '"' ? 2 : *p < 0x20 || *p > 0x7e ? 4 : 1;
  }
  return length;
}

static const char *same_value(const char *name, void *ctx) {
  (void)name;
  return ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const struct nvlar_param_desc *desc = &nvlar_param_descs[data[0] % NVLAR_PARAM_COUNT];
  char *text = malloc(size);
  if (text == NULL) return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';

  int64_t number = -1;
  char why[128] = "";
  if (nvlar_param_parse(desc, text, &number, why, sizeof(why))) {
    check_number(desc, number);
  } else {
    CHECK(why[0] != '\0');
  }

  struct nvlar_params params;
  nvlar_params_load(&params, same_value, text);
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) {
    const struct nvlar_param_value *value = &params.values[id];
    CHECK(value->text != NULL);
    CHECK(memchr(value->error, '\0', sizeof(value->error)) != NULL);
    CHECK(printable(value->error));
    check_number(&nvlar_param_descs[id], value->number);
    if (value->error[0] != '\0') {
      CHECK(!value->from_env);
      CHECK(strncmp(value->error, nvlar_param_descs[id].env_name,
                    strlen(nvlar_param_descs[id].env_name)) == 0);
      CHECK(strcmp(value->text, nvlar_param_descs[id].default_text) == 0);
    } else {
      CHECK(value->from_env);
    }
  }
  nvlar_params_release(&params);

  char quoted[68], back[68];
  nvlar_quotable(text, quoted, sizeof(quoted));
  CHECK(strlen(quoted) < sizeof(quoted) && printable(quoted));
  if (quoted_length(text) < sizeof(quoted)) {
    CHECK(unquote(quoted, back, sizeof(back)) && strcmp(back, text) == 0);
  } else {
    size_t length = strlen(quoted);
    CHECK(length >= sizeof(quoted) - 4 && strcmp(quoted + length - 3, "...") == 0);
  }

  nvlar_log(NVLAR_LOG_WARN, "fuzz %s=\"%s\"", desc->env_name, text);
  nvlar_log(NVLAR_LOG_TRACE, "%s", text);
  free(text);
  return 0;
}
