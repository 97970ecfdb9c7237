/* cli.c: see cli.h.
 *
 * Design. The environment layer runs first and the command line overwrites what it set, so
 * precedence needs no bookkeeping beyond the `src` tag kept for messages. Only the upper-casing
 * of ASCII letters is needed for flag names ('a'..'z', '-' -> '_'); digits pass through.
 * Numbers go through strtol/strtod with errno and end-pointer checks: "", "12x", "1e999" and
 * "nan" are rejected rather than silently read as 0, a prefix, or infinity. getopt_long's '?'
 * covers both an unknown flag and "--flag=VALUE" on a flag that takes no value, so
 * cli_bad_option_msg looks at the refused argument to say which. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

void cli_env_layer(const char **val, const char **src, const struct option *opts, int n, const char *prefix) {
  IB_CHECK(val && src && opts && prefix && n >= 0);
  for (int i = 0; i < n; i++) {
    char name[128];
    size_t k = (size_t)snprintf(name, sizeof name, "%s", prefix);
    IB_CHECK(k < sizeof name);
    for (const char *p = opts[i].name; *p && k + 1 < sizeof name; p++) {
      char ch = *p;
      if (ch == '-') ch = '_';
      else if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
      name[k++] = ch;
    }
    name[k] = 0;
    const char *v = getenv(name);
    src[i] = "--";
    if (v && *v) {
      val[i] = v;
      src[i] = "(environment) --";
    }
  }
}

int cli_cmdline_layer(const char **val, const char **src, const struct option *opts, int help, const char *shortopts,
                      int argc, char **argv, const char *prog, int loud) {
  IB_CHECK(val && src && opts && shortopts && shortopts[0] == ':' && prog && help >= 0);
  opterr = 0; /* we print our own messages, once */
  int c;
  while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
    if (c == help || c == 'h') return CLI_HELP;
    if (c == '?' || c == ':') {
      char why[256];
      const char *msg = cli_bad_option_msg(why, sizeof why, c, argv[optind - 1], opts);
      if (loud) fprintf(stderr, "%s: %s (see %s --help)\n", prog, msg, prog);
      return CLI_BAD;
    }
    IB_CHECK(c >= 0 && c < help);
    val[c] = opts[c].has_arg ? optarg : "1";
    src[c] = "--";
  }
  if (optind < argc) {
    if (loud) fprintf(stderr, "%s: unexpected argument '%s' (see %s --help)\n", prog, argv[optind], prog);
    return CLI_BAD;
  }
  return CLI_RUN;
}

const char *cli_bad_option_msg(char *buf, size_t cap, int c, const char *arg, const struct option *opts) {
  IB_CHECK(buf && cap > 0 && arg && opts);
  if (c == ':') {
    snprintf(buf, cap, "missing value for option '%s'", arg);
    return buf;
  }
  /* getopt_long says '?' both for an unknown name and for "--flag=VALUE" on a flag without a
   * value; tell them apart by the name before '=', matched as getopt_long does (exactly, or as
   * the unique prefix of one option). */
  const char *eq = strchr(arg, '=');
  if (arg[0] == '-' && arg[1] == '-' && eq != NULL && eq > arg + 2) {
    size_t n = (size_t)(eq - (arg + 2));
    const struct option *hit = NULL;
    int matches = 0;
    for (const struct option *o = opts; o->name != NULL; o++) {
      if (strncmp(o->name, arg + 2, n) != 0) continue;
      if (o->name[n] == '\0') { /* exact: wins over prefixes */
        hit = o;
        matches = 1;
        break;
      }
      hit = o;
      matches++;
    }
    if (matches == 1 && hit->has_arg == no_argument) {
      snprintf(buf, cap, "option '--%s' takes no value (given '%s')", hit->name, arg);
      return buf;
    }
  }
  snprintf(buf, cap, "unknown option '%s'", arg);
  return buf;
}

int cli_long_in(long *out, const char *text, long lo, long hi) {
  IB_CHECK(out && text);
  char *end = NULL;
  errno = 0;
  long x = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || x < lo || x > hi) return -1;
  *out = x;
  return 0;
}

int cli_double_in(double *out, const char *text, double lo, double hi) {
  IB_CHECK(out && text);
  char *end = NULL;
  errno = 0;
  double x = strtod(text, &end);
  /* ERANGE on underflow (e.g. 1e-400) still gives a usable 0 or denormal: only overflow is an error. */
  if ((errno != 0 && fabs(x) == HUGE_VAL) || end == text || *end != '\0' || !isfinite(x) || !(x >= lo && x <= hi))
    return -1;
  *out = x;
  return 0;
}

int cli_parse_long(long *out, const char *prog, const char *flag, const char *text, long lo, long hi) {
  if (cli_long_in(out, text, lo, hi) == 0) return 0;
  fprintf(stderr, "%s: --%s '%s' is not an integer in [%ld, %ld]\n", prog, flag, text, lo, hi);
  return -1;
}

int cli_parse_double(double *out, const char *prog, const char *flag, const char *text, double lo, double hi) {
  if (cli_double_in(out, text, lo, hi) == 0) return 0;
  if (isinf(hi)) fprintf(stderr, "%s: --%s '%s' is not a finite number >= %g\n", prog, flag, text, lo);
  else fprintf(stderr, "%s: --%s '%s' is not a number in [%g, %g]\n", prog, flag, text, lo, hi);
  return -1;
}
