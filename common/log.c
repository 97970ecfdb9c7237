/* log.c: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ib.h"

static char role_name[32] = "ibrl";
static int role_rank = -1;
static int level_max = 2;
static double t0 = -1.0;

void log_set_role(const char *role, int rank) {
  snprintf(role_name, sizeof role_name, "%s", role ? role : "ibrl");
  role_rank = rank;
  if (t0 < 0) t0 = ib_now_s();
}

void log_set_level(int level) { level_max = level; }

static void emit(int level, const char *tag, const char *fmt, va_list ap) {
  if (level > level_max) return;
  if (t0 < 0) t0 = ib_now_s();
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (role_rank >= 0)
    fprintf(stderr, "%9.3f %s[%d] %s %s\n", ib_now_s() - t0, role_name, role_rank, tag, msg);
  else
    fprintf(stderr, "%9.3f %s %s %s\n", ib_now_s() - t0, role_name, tag, msg);
}

#define LOG_FN(name, level, tag)        \
  void name(const char *fmt, ...) {     \
    va_list ap;                         \
    va_start(ap, fmt);                  \
    emit(level, tag, fmt, ap);          \
    va_end(ap);                         \
  }

LOG_FN(log_error, 0, "ERROR")
LOG_FN(log_warn, 1, "WARN")
LOG_FN(log_info, 2, "INFO")
LOG_FN(log_debug, 3, "DEBUG")
