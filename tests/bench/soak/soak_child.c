/* soak_child.c: the ibrl-replay children of `ibrl-bench soak`.
 *
 * Design. A shard is a child process: fork + exec of ibrl-replay on 127.0.0.1 (port 0 the first
 * time, then the port that incarnation picked), stdout piped so we can read "listening on
 * HOST:PORT", and PR_SET_PDEATHSIG so it is SIGKILLed if the soak dies (a ctest timeout kills only
 * the soak; no orphan keeps the port). It gets a small online ring so it wraps many times, its own
 * fresh checkpoint directory, periodic checkpoints and the write-ahead log by default. The shard
 * prints its port only after it restored its checkpoint and replayed its log, so "listening" means
 * ready. The first children are forked before gRPC starts in this process; restarts fork from the
 * main thread while gRPC runs, which is safe because the child only calls exec (as
 * tests/rpc/test_client_restart.c does), and PR_SET_PDEATHSIG follows the forking thread. The
 * server does not set SO_REUSEPORT and gRPC's listener sets SO_REUSEADDR, so a restarted shard
 * binds its old port at once (the caller still retries a start that fails).
 * Its memory is read from /proc/<pid>/status (VmRSS, VmHWM, Threads) and /proc/<pid>/fd, once a
 * second, by the watching thread.
 * Its stdout and stderr share one pipe, which the soak reads: until "listening on" while it starts,
 * then (non-blocking) once a second and while it stops. Every line but "listening on" is relayed to
 * the soak's stderr as it was, and the lines about a torn log tail are counted (--crash-tear compares
 * them with what it tore). The shard logs a few lines a minute, far under the pipe's 64 KB, so the
 * seconds the main thread spends on a restart cannot block it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ib.h"
#include "soak_child.h"

/* ---- the child's output ---- */

/* One whole line of the child (ch->line, NUL-terminated): relayed to stderr, and the torn-tail lines
 * counted. Returns the port if it is "listening on HOST:PORT", else 0. */
static int soak_child_line(soak_child *ch) {
  const char *l = ch->line, *colon = strrchr(l, ':');
  if (strncmp(l, "listening on ", 13) == 0 && colon != NULL) return atoi(colon + 1);
  fprintf(stderr, "%s\n", l);
  /* rsrv.c's restore line ends "(R records, I items, N torn bytes dropped)". */
  const char *end = strstr(l, " torn bytes dropped)");
  if (end != NULL) {
    const char *d = end;
    while (d > l && d[-1] >= '0' && d[-1] <= '9') d--;
    if (d < end) ch->torn_dropped = strtoll(d, NULL, 10);
  }
  if (strstr(l, "(a write torn by a crash)") != NULL) ch->torn_warnings++;
  return 0;
}

/* Takes the bytes buf[0, n) of the child's output; returns a port if a "listening on" line came. */
static int soak_child_bytes(soak_child *ch, const char *buf, size_t n) {
  int port = 0;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] != '\n' && ch->line_len + 1 < sizeof ch->line) {
      ch->line[ch->line_len++] = buf[i];
      continue;
    }
    ch->line[ch->line_len] = '\0'; /* a line longer than the buffer is relayed in pieces */
    ch->line_len = 0;
    int p = soak_child_line(ch);
    if (p > 0) port = p;
    if (buf[i] != '\n') ch->line[ch->line_len++] = buf[i];
  }
  return port;
}

void soak_child_drain(soak_child *ch) {
  if (ch->pid <= 0) return;
  char buf[4096];
  ssize_t n;
  while ((n = read(ch->out_fd, buf, sizeof buf)) > 0) soak_child_bytes(ch, buf, (size_t)n);
}

/* Reads the child's output until "listening on HOST:PORT" (20 s bound), relaying the lines before
 * it; then makes the pipe non-blocking for soak_child_drain. Returns the port or -1. */
static int soak_child_port(soak_child *ch) {
  double until = ib_now_s() + 20;
  for (;;) {
    struct pollfd p = {ch->out_fd, POLLIN, 0};
    int left = (int)((until - ib_now_s()) * 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0) return -1;
    char c;
    if (read(ch->out_fd, &c, 1) != 1) return -1;
    int port = soak_child_bytes(ch, &c, 1);
    if (port > 0) {
      int fl = fcntl(ch->out_fd, F_GETFL);
      if (fl < 0 || fcntl(ch->out_fd, F_SETFL, fl | O_NONBLOCK) != 0) return -1;
      return port;
    }
  }
}

/* ---- start, stop, /proc ---- */

int soak_child_start(soak_child *ch, const soak_cfg *c, const char *dir, int port_want, int index) {
  char obs[16], act[16], on[24], demo[24], per[32], thr[16], ports[16], idx[16], spi[32];
  snprintf(obs, sizeof obs, "%d", c->obs_dim);
  snprintf(act, sizeof act, "%d", c->act_dim);
  snprintf(on, sizeof on, "%ld", c->online_cap);
  snprintf(demo, sizeof demo, "%ld", c->demo_cap);
  snprintf(per, sizeof per, "%g", c->ckpt_period);
  snprintf(thr, sizeof thr, "%d", c->server_threads);
  snprintf(ports, sizeof ports, "%d", port_want);
  snprintf(idx, sizeof idx, "%d", index);
  const char *argv[32] = {c->replay_bin, "--port", ports, "--obs-dim", obs, "--act-dim", act, "--online-capacity", on,
                          "--demo-capacity", demo, "--threads", thr, "--durability", c->durability, "--ckpt-dir", dir,
                          "--ckpt-period", per, "--shard-index", idx};
  int na = 21;
  if (c->spi > 0) {
    snprintf(spi, sizeof spi, "%g", c->spi);
    argv[na++] = "--samples-per-insert";
    argv[na++] = spi;
  }
  if (c->token != NULL) {
    argv[na++] = "--token";
    argv[na++] = c->token;
  }
  if (c->tls_cert != NULL) {
    argv[na++] = "--tls-cert";
    argv[na++] = c->tls_cert;
    argv[na++] = "--tls-key";
    argv[na++] = c->tls_key;
  }
  argv[na] = NULL;
  int fd[2];
  if (pipe(fd) != 0) return ib_fail(IB_EIO, "pipe: %s", strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return ib_fail(IB_EIO, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* Die with the soak (a ctest timeout kills only the soak): no orphan shard keeps its port. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fd[1], 1);
    dup2(fd[1], 2);
    close(fd[0]);
    close(fd[1]);
    execv(c->replay_bin, (char *const *)argv);
    _exit(127);
  }
  close(fd[1]);
  ch->pid = pid;
  ch->out_fd = fd[0];
  ch->line_len = 0;
  ch->torn_dropped = -1;
  ch->torn_warnings = 0;
  int port = soak_child_port(ch);
  if (port <= 0) {
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    ch->pid = -1;
    close(fd[0]);
    if (WIFEXITED(st))
      return ib_fail(IB_EUNAVAIL, "shard %d: %s exited with status %d before printing 'listening on HOST:PORT' HINT: "
                     "run it by hand with the same flags; see its messages above", index, c->replay_bin,
                     WEXITSTATUS(st));
    return ib_fail(IB_ETIMEDOUT, "shard %d: %s did not print 'listening on HOST:PORT' within 20 s (killed) HINT: run "
                   "it by hand with the same flags", index, c->replay_bin);
  }
  ch->port = port;
  snprintf(ch->target, sizeof ch->target, "127.0.0.1:%d", port);
  return IB_OK;
}

void soak_child_signal(soak_child *ch, int sig) {
  if (ch->pid > 0) kill(ch->pid, sig);
}

int soak_child_stop(soak_child *ch, int sig, double secs) {
  soak_child_signal(ch, sig);
  return soak_child_wait(ch, secs);
}

int soak_child_wait(soak_child *ch, double secs) {
  if (ch->pid <= 0) return -1;
  double until = ib_now_s() + secs;
  int st = 0, code = -1;
  for (;;) {
    pid_t r = waitpid(ch->pid, &st, WNOHANG);
    if (r == ch->pid) {
      code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    if (r < 0 || ib_now_s() > until) {
      kill(ch->pid, SIGKILL);
      waitpid(ch->pid, &st, 0);
      break;
    }
    soak_child_drain(ch); /* a shard's last words (or LeakSanitizer's report) must not block it */
    usleep(20000);
  }
  soak_child_drain(ch);
  close(ch->out_fd);
  ch->pid = -1;
  return code;
}

int soak_child_gone(soak_child *ch, int *code) {
  int st = 0;
  if (waitpid(ch->pid, &st, WNOHANG) != ch->pid) return 0;
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  soak_child_drain(ch);
  close(ch->out_fd);
  ch->pid = -1;
  return 1;
}

int soak_child_proc_read(pid_t pid, soak_point *p) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kb;
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) p->rss_mb = (double)kb / 1024.0;
    else if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) p->hwm_mb = (double)kb / 1024.0;
    else if (sscanf(line, "Threads: %ld", &kb) == 1) p->threads = (int)kb;
  }
  fclose(f);
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  p->fds = 0;
  if (d != NULL) {
    for (struct dirent *e; (e = readdir(d)) != NULL;)
      if (e->d_name[0] != '.') p->fds++;
    closedir(d);
  }
  return 0;
}

void soak_child_stop_all(const soak_cfg *c, soak_run *run) {
  for (int s = 0; s < c->shards; s++)
    if (run->shard[s].ch.pid > 0) run->shard[s].child_exit = soak_child_stop(&run->shard[s].ch, SIGTERM, 60);
}

/* ---- files: checkpoint directories, TLS, the binary ---- */

void soak_child_dir_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  char path[PATH_MAX];
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

/* Makes `dir` if missing and checks it is empty (the shard would restore from it). */
static int soak_dir_empty(const char *dir, const char *what) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ib_fail(IB_EIO, "%s %s: %s", what, dir, strerror(errno));
  DIR *d = opendir(dir);
  if (d == NULL) return ib_fail(IB_EIO, "%s %s: %s", what, dir, strerror(errno));
  int files = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) files += e->d_name[0] != '.';
  closedir(d);
  if (files > 0)
    return ib_fail(IB_EINVAL, "%s %s is not empty HINT: the shard would restore from it; give a new directory", what,
                   dir);
  return IB_OK;
}

int soak_child_dirs_make(const soak_cfg *c, soak_run *run, int *owned) {
  *owned = c->ckpt_dir == NULL;
  for (int s = 0; s < c->shards; s++) {
    char *dir = run->shard[s].dir;
    if (*owned) {
      snprintf(dir, PATH_MAX, "/tmp/ibrl-soak-XXXXXX");
      if (mkdtemp(dir) == NULL) {
        int e = errno;
        for (int k = 0; k < s; k++) soak_child_dir_remove(run->shard[k].dir);
        return ib_fail(IB_EIO, "mkdtemp /tmp/ibrl-soak-*: %s", strerror(e));
      }
      continue;
    }
    if (c->shards == 1) {
      snprintf(dir, PATH_MAX, "%s", c->ckpt_dir);
    } else {
      /* Only the shards' own directories must be empty: they are what a shard restores from. */
      if (s == 0 && mkdir(c->ckpt_dir, 0755) != 0 && errno != EEXIST)
        return ib_fail(IB_EIO, "--ckpt-dir %s: %s", c->ckpt_dir, strerror(errno));
      if (strlen(c->ckpt_dir) + 16 >= PATH_MAX) return ib_fail(IB_EINVAL, "--ckpt-dir %s is too long", c->ckpt_dir);
      snprintf(dir, PATH_MAX, "%s/shard%d", c->ckpt_dir, s);
    }
    int rc = soak_dir_empty(dir, "--ckpt-dir");
    if (rc != IB_OK) return rc;
  }
  return IB_OK;
}

int soak_child_tls_make(soak_cfg *c, char *dir, char *cert, char *key) {
  snprintf(dir, PATH_MAX, "/tmp/ibrl-soak-tls-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "soak: --tls: mkdtemp /tmp/ibrl-soak-tls-*: %s; TLS is SKIPPED, the soak runs in plaintext\n",
            strerror(errno));
    dir[0] = '\0';
    return 0;
  }
  snprintf(cert, PATH_MAX, "%s/cert.pem", dir);
  snprintf(key, PATH_MAX, "%s/key.pem", dir);
  char cmd[3 * PATH_MAX + 256];
  snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 30 "
           "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1", key, cert);
  int st = system(cmd);
  if (st != 0) {
    fprintf(stderr, "soak: --tls: openssl could not make a self-signed certificate (exit status %d); TLS is SKIPPED, "
            "the soak runs in plaintext HINT: install openssl\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    soak_child_dir_remove(dir);
    dir[0] = '\0';
    return 0;
  }
  c->tls_cert = cert;
  c->tls_key = key;
  return 1;
}

int soak_child_bin_find(soak_cfg *c, char *buf, size_t cap) {
  if (c->replay_bin == NULL) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 16);
    if (n <= 0) return ib_fail(IB_EIO, "cannot read /proc/self/exe HINT: pass --replay-bin");
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    snprintf(slash ? slash + 1 : buf, cap - (size_t)(slash ? slash + 1 - buf : 0), "ibrl-replay");
    c->replay_bin = buf;
  }
  if (access(c->replay_bin, X_OK) != 0)
    return ib_fail(IB_ENOTFOUND, "'%s' is not an executable HINT: build the ibrl-replay target or pass --replay-bin",
                   c->replay_bin);
  return IB_OK;
}

