/* cli.h: the command-line plumbing the ibrl binaries share: the two-layer flag collection
 * (environment variable PREFIX<FLAG>, then the command line, the command line winning) and strict
 * number parsing with range checks.
 *
 * Flag collection gathers raw strings only: val[i] is the text of opts[i] (NULL if never given;
 * "1" for a flag without argument) and src[i] says where it came from ("--" or
 * "(environment) --"), so a caller's error message can name the layer. The strings point into
 * the environment or argv (not owned, valid for the process). Applying the values (presets
 * first, then flags) stays with each binary.
 *
 * Numbers: the whole text must be a number (no trailing characters, no empty text, no overflow)
 * inside [lo, hi]. cli_long_in / cli_double_in print nothing (for binaries with their own message
 * format); cli_parse_long / cli_parse_double print "<prog>: --<flag> '<text>' is not ..." to
 * stderr. All return 0, or -1 leaving *out untouched.
 *
 * Uses getopt_long's global state (optind, optarg, opterr): call from main() only, one thread. */
#ifndef IB_CLI_H
#define IB_CLI_H

#include <getopt.h>
#include <stddef.h>

/* Layer 1: for opts[0..n), reads PREFIX + the flag name upper-cased with '-' -> '_' (e.g.
 * "IBRL_ACTOR_" + "max-pending" -> IBRL_ACTOR_MAX_PENDING). A set, non-empty variable fills
 * val[i] and src[i] = "(environment) --"; otherwise val[i] is untouched and src[i] = "--". */
void cli_env_layer(const char **val, const char **src, const struct option *opts, int n, const char *prefix);

/* What cli_cmdline_layer found. */
enum { CLI_RUN = 0, CLI_HELP = 1, CLI_BAD = 2 };

/* Layer 2: getopt_long over argv with `shortopts` (must start with ':'; a 'h' in it means
 * --help too). Options must have val == their index in opts, and index `help` is --help; every
 * option before it sets val[i] and src[i] = "--". Returns CLI_HELP on --help (the caller prints
 * its usage), CLI_BAD on an unknown option, a missing value, a value given to a flag that takes
 * none, or a stray argument (printed as "<prog>: <cli_bad_option_msg> (see <prog> --help)" when
 * `loud`), else CLI_RUN. */
int cli_cmdline_layer(const char **val, const char **src, const struct option *opts, int help, const char *shortopts,
                      int argc, char **argv, const char *prog, int loud);

/* Why getopt_long (with opterr = 0) refused an argument, for the caller's message. `c` is what
 * getopt_long returned ('?' or ':'), `arg` the refused argument (argv[optind - 1]). Writes to
 * buf (always NUL-terminated) one of: "missing value for option '--x'", "option '--x' takes no
 * value" (a no_argument long option, or an unambiguous prefix of one, given as --x=VALUE) or
 * "unknown option '--x'". Returns buf. */
const char *cli_bad_option_msg(char *buf, size_t cap, int c, const char *arg, const struct option *opts);

/* Strict numbers, silent. */
int cli_long_in(long *out, const char *text, long lo, long hi);
int cli_double_in(double *out, const char *text, double lo, double hi);

/* Strict numbers with a message naming prog, --flag and the text. cli_parse_double with
 * hi = INFINITY says "is not a finite number >= lo". */
int cli_parse_long(long *out, const char *prog, const char *flag, const char *text, long lo, long hi);
int cli_parse_double(double *out, const char *prog, const char *flag, const char *text, double lo, double hi);

#endif /* IB_CLI_H */
