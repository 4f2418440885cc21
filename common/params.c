#include "params.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bytes.h"
#include "escape.h"

const struct nvlar_param_desc nvlar_param_descs[NVLAR_PARAM_COUNT] = {
#define NVLAR_PARAM_DESC(name, type, def, choices, min, max, multiple_of, doc)                \
  [NVLAR_P_##name] = {"NVLAR_" #name, type, def, choices, min, max, multiple_of, doc},
    NVLAR_PARAM_TABLE(NVLAR_PARAM_DESC)
#undef NVLAR_PARAM_DESC
};

static bool parse_bool(const char *text, int64_t *number) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(text, yes[i]) == 0) {
      *number = 1;
      return true;
    }
    if (strcasecmp(text, no[i]) == 0) {
      *number = 0;
      return true;
    }
  }
  return false;
}

/* A decimal integer, blanks around it allowed; rejects trailing junk and overflow. (Signs
 * pass: the range says whether a negative number is refused.) */
static bool parse_integer(const char *text, int64_t *number) {
  while (isspace((unsigned char)*text)) text++;
  if (*text == '\0') return false;
  errno = 0;
  char *end = NULL;
  long long value = strtoll(text, &end, 10);
  if (errno != 0 || end == text) return false;
  while (isspace((unsigned char)*end)) end++;
  if (*end != '\0') return false;
  *number = value;
  return true;
}

/* Whether a parsed number lies within the parameter's range and is a multiple of what it must
 * be; if not, `why` says so and the number is 0. */
static bool number_allowed(const struct nvlar_param_desc *desc, int64_t *number, char *why,
                           size_t why_size) {
  if (*number < desc->min || *number > desc->max) {
    snprintf(why, why_size, "out of range [%" PRId64 ", %" PRId64 "]", desc->min, desc->max);
    *number = 0;
    return false;
  }
  if (desc->multiple_of > 0 && *number % desc->multiple_of != 0) {
    snprintf(why, why_size, "not a multiple of %" PRId64, desc->multiple_of);
    *number = 0;
    return false;
  }
  return true;
}

static bool parse_choice(const char *text, const char *choices, int64_t *number) {
  size_t length = strlen(text);
  int64_t index = 0;
  for (const char *word = choices; *word != '\0'; index++) {
    const char *bar = strchr(word, '|');
    size_t word_length = bar ? (size_t)(bar - word) : strlen(word);
    if (word_length == length && strncasecmp(word, text, length) == 0) {
      *number = index;
      return true;
    }
    if (bar == NULL) break;
    word = bar + 1;
  }
  return false;
}

bool nvlar_param_parse(const struct nvlar_param_desc *desc, const char *text, int64_t *number,
                       char *why, size_t why_size) {
  *number = 0;
  switch (desc->type) {
    case NVLAR_PARAM_STRING:
      return true;
    case NVLAR_PARAM_BOOL:
      if (parse_bool(text, number)) return true;
      snprintf(why, why_size, "not a boolean (use 0 or 1)");
      return false;
    case NVLAR_PARAM_CHOICE:
      if (parse_choice(text, desc->choices, number)) return true;
      snprintf(why, why_size, "not one of %s", desc->choices);
      return false;
    case NVLAR_PARAM_INT:
      if (!parse_integer(text, number)) {
        snprintf(why, why_size, "not a decimal integer");
        return false;
      }
      return number_allowed(desc, number, why, why_size);
    case NVLAR_PARAM_SIZE: {
      uint64_t bytes = 0;
      const char *bad = nvlar_parse_bytes(text, &bytes);
      if (bad != NULL) {
        snprintf(why, why_size, "not a size in bytes: %s", bad);
        return false;
      }
      if (bytes > (uint64_t)desc->max) { /* also whatever int64_t cannot hold */
        snprintf(why, why_size, "out of range [%" PRId64 ", %" PRId64 "]", desc->min, desc->max);
        return false;
      }
      *number = (int64_t)bytes;
      return number_allowed(desc, number, why, why_size);
    }
  }
  snprintf(why, why_size, "unknown parameter type");
  return false;
}

/* Stands in for a string when strdup fails, so that `text` is never NULL. */
static const char no_text[] = "";

void nvlar_params_load(struct nvlar_params *params, nvlar_env_lookup_fn lookup, void *ctx) {
  memset(params, 0, sizeof(*params));
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) {
    const struct nvlar_param_desc *desc = &nvlar_param_descs[id];
    struct nvlar_param_value *value = &params->values[id];
    char why[128] = "";
    const char *text = lookup(desc->env_name, ctx);
    if (text != NULL && nvlar_param_parse(desc, text, &value->number, why, sizeof(why))) {
      value->from_env = true;
    } else {
      if (text != NULL) {
        /* The value is the user's bytes: quoted and cut, so that it can neither break the
         * WARN line nor flood it. */
        char quoted[68];
        snprintf(value->error, sizeof(value->error), "%s=\"%s\" ignored: %s; using %s",
                 desc->env_name, nvlar_quotable(text, quoted, sizeof(quoted)), why,
                 desc->default_text[0] ? desc->default_text : "\"\"");
      }
      text = desc->default_text;
      /* Defaults are part of the table and always parse; a test proves it. */
      (void)nvlar_param_parse(desc, text, &value->number, why, sizeof(why));
    }
    char *copy = strdup(text);
    value->text = copy ? copy : no_text;
  }
}

void nvlar_params_release(struct nvlar_params *params) {
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) {
    const char *text = params->values[id].text;
    if (text != no_text) free((void *)text);
    params->values[id].text = NULL;
  }
}

static const char *lookup_environment(const char *name, void *ctx) {
  (void)ctx;
  return getenv(name);
}

static struct nvlar_params process_params;
static pthread_once_t process_params_once = PTHREAD_ONCE_INIT;

static void load_process_params(void) {
  nvlar_params_load(&process_params, lookup_environment, NULL);
}

const struct nvlar_params *nvlar_params(void) {
  pthread_once(&process_params_once, load_process_params);
  return &process_params;
}

int64_t nvlar_param_number(enum nvlar_param_id id) { return nvlar_params()->values[id].number; }

const char *nvlar_param_text(enum nvlar_param_id id) { return nvlar_params()->values[id].text; }

bool nvlar_param_is_set(enum nvlar_param_id id) { return nvlar_params()->values[id].from_env; }

const char *nvlar_param_choice_word(enum nvlar_param_id id, int64_t index, char *out,
                                    size_t out_size) {
  const char *word = nvlar_param_descs[id].choices;
  for (int64_t i = 0; word != NULL && i < index; i++) {
    word = strchr(word, '|');
    if (word != NULL) word++;
  }
  if (word == NULL || index < 0) {
    snprintf(out, out_size, "?");
    return out;
  }
  const char *bar = strchr(word, '|');
  int length = bar != NULL ? (int)(bar - word) : (int)strlen(word);
  snprintf(out, out_size, "%.*s", length, word);
  return out;
}
