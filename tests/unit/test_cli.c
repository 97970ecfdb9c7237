/* test_cli.c: the shared flag plumbing (common/cli.h): strict numbers and the two flag layers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "th.h"

static void test_long_strict(void) {
  long v = 7;
  TH_CHECK_EQ_INT(cli_long_in(&v, "42", 0, 100), 0);
  TH_CHECK_EQ_INT(v, 42);
  v = 7;
  TH_CHECK_EQ_INT(cli_long_in(&v, "101", 0, 100), -1); /* out of range */
  TH_CHECK_EQ_INT(cli_long_in(&v, "4x", 0, 100), -1);  /* trailing characters */
  TH_CHECK_EQ_INT(cli_long_in(&v, "", 0, 100), -1);    /* empty */
  TH_CHECK_EQ_INT(cli_long_in(&v, "99999999999999999999999", 0, 100), -1); /* overflow */
  TH_CHECK_EQ_INT(v, 7); /* untouched on failure */
}

static void test_double_strict(void) {
  double d = 1.5;
  TH_CHECK_EQ_INT(cli_double_in(&d, "0.25", 0, 1), 0);
  TH_CHECK_NEAR(d, 0.25, 0);
  d = 1.5;
  TH_CHECK_EQ_INT(cli_double_in(&d, "nan", 0, 1), -1);
  TH_CHECK_EQ_INT(cli_double_in(&d, "inf", 0, INFINITY), -1);
  TH_CHECK_EQ_INT(cli_double_in(&d, "2", 0, 1), -1);
  TH_CHECK_EQ_INT(cli_double_in(&d, "0.5s", 0, 1), -1);
  TH_CHECK_NEAR(d, 1.5, 0);
}

enum { O_PORT, O_NAME, O_VERBOSE, O_HELP, O_COUNT };
static const struct option opts[] = {
    {"port", required_argument, NULL, O_PORT},
    {"name", required_argument, NULL, O_NAME},
    {"verbose", no_argument, NULL, O_VERBOSE},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void test_layers(void) {
  const char *val[O_COUNT] = {0};
  const char *src[O_COUNT] = {0};
  setenv("IBTEST_PORT", "81", 1);
  setenv("IBTEST_NAME", "from-env", 1);
  unsetenv("IBTEST_VERBOSE");
  cli_env_layer(val, src, opts, O_HELP, "IBTEST_");
  TH_CHECK(val[O_PORT] && !strcmp(val[O_PORT], "81"));
  TH_CHECK(strstr(src[O_PORT], "environment") != NULL);
  TH_CHECK(val[O_VERBOSE] == NULL);
  /* The command line wins over the environment. */
  char a0[] = "prog", a1[] = "--name", a2[] = "cli", a3[] = "--verbose";
  char *argv[] = {a0, a1, a2, a3, NULL};
  optind = 1;
  int rc = cli_cmdline_layer(val, src, opts, O_HELP, ":h", 4, argv, "prog", 0);
  TH_CHECK_EQ_INT(rc, CLI_RUN);
  TH_CHECK(val[O_NAME] && !strcmp(val[O_NAME], "cli"));
  TH_CHECK(!strcmp(src[O_NAME], "--"));
  TH_CHECK(val[O_PORT] && !strcmp(val[O_PORT], "81"));
  TH_CHECK(val[O_VERBOSE] != NULL);
  /* Unknown flags and stray arguments are refused; --help is reported. */
  char b1[] = "--bogus";
  char *argv2[] = {a0, b1, NULL};
  optind = 1;
  TH_CHECK_EQ_INT(cli_cmdline_layer(val, src, opts, O_HELP, ":h", 2, argv2, "prog", 0), CLI_BAD);
  char c1[] = "stray";
  char *argv3[] = {a0, c1, NULL};
  optind = 1;
  TH_CHECK_EQ_INT(cli_cmdline_layer(val, src, opts, O_HELP, ":h", 2, argv3, "prog", 0), CLI_BAD);
  char d1[] = "--help";
  char *argv4[] = {a0, d1, NULL};
  optind = 1;
  TH_CHECK_EQ_INT(cli_cmdline_layer(val, src, opts, O_HELP, ":h", 2, argv4, "prog", 0), CLI_HELP);
  unsetenv("IBTEST_PORT");
  unsetenv("IBTEST_NAME");
}

/* getopt_long's '?' for "--verbose=1" is not an unknown option: the message says it takes no value. */
static void test_bad_option_msg(void) {
  char buf[256];
  const char *m = cli_bad_option_msg(buf, sizeof buf, '?', "--verbose=1", opts);
  TH_CHECK_MSG(strstr(m, "'--verbose' takes no value") != NULL, "message: %s", m);
  m = cli_bad_option_msg(buf, sizeof buf, '?', "--verb=yes", opts); /* a unique prefix, as getopt_long accepts */
  TH_CHECK_MSG(strstr(m, "'--verbose' takes no value") != NULL, "message: %s", m);
  m = cli_bad_option_msg(buf, sizeof buf, '?', "--bogus=1", opts);
  TH_CHECK_MSG(strstr(m, "unknown option '--bogus=1'") != NULL, "message: %s", m);
  m = cli_bad_option_msg(buf, sizeof buf, '?', "--port=1", opts); /* takes a value: not this case */
  TH_CHECK_MSG(strstr(m, "unknown option") != NULL, "message: %s", m);
  /* Prefixes as getopt_long matches them: an exact name wins over longer ones, an ambiguous
   * prefix names no option. */
  static const struct option q[] = {{"quiet", no_argument, NULL, 0},
                                    {"quiet-level", required_argument, NULL, 1},
                                    {"query", no_argument, NULL, 2},
                                    {NULL, 0, NULL, 0}};
  m = cli_bad_option_msg(buf, sizeof buf, '?', "--quiet=1", q);
  TH_CHECK_MSG(strstr(m, "'--quiet' takes no value") != NULL, "message: %s", m);
  m = cli_bad_option_msg(buf, sizeof buf, '?', "--qu=1", q);
  TH_CHECK_MSG(strstr(m, "unknown option '--qu=1'") != NULL, "message: %s", m);
  m = cli_bad_option_msg(buf, sizeof buf, ':', "--port", opts);
  TH_CHECK_MSG(strstr(m, "missing value for option '--port'") != NULL, "message: %s", m);
  /* And cli_cmdline_layer refuses it. */
  const char *val[O_COUNT] = {0};
  const char *src[O_COUNT] = {0};
  char a0[] = "prog", a1[] = "--verbose=1";
  char *argv[] = {a0, a1, NULL};
  optind = 1;
  TH_CHECK_EQ_INT(cli_cmdline_layer(val, src, opts, O_HELP, ":h", 2, argv, "prog", 0), CLI_BAD);
  TH_CHECK(val[O_VERBOSE] == NULL);
}

static const th_case cases[] = {
    {"cli bad option: unknown, missing value, takes no value", test_bad_option_msg},
    {"cli long: strict, range, untouched on failure", test_long_strict},
    {"cli double: strict, finite, range", test_double_strict},
    {"cli layers: environment then command line", test_layers},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
