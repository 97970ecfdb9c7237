/* test_ckpt_stall.c: a shard whose checkpoint is held up (a slow or busy disk) goes on serving Info
 * and inserts.
 *
 * Found by the soak (ibrl-bench soak, docs/results/replay-soak.md): Info took the checkpoint mutex
 * to read the checkpoint counter, and rsrv_checkpoint holds that mutex for the whole checkpoint,
 * including the wait for the background writer's write and fsync. On a busy disk a checkpoint
 * took 10-34 s, every Info waited that long, and since rc_sample asks Info for table sizes, the
 * samplers' Infos took every worker thread and the whole shard stopped (inserts too).
 *
 * The hold-up is made deterministic with a FIFO: store.ckpt.tmp is created as a named pipe before
 * the shard starts, so the background writer blocks in open() until this test opens the read end.
 * While it is blocked (Info shows 0 checkpoints although the period is 0.2 s), Info and an insert
 * must answer within 2 s. Then the test drains the FIFO; that checkpoint fails (fsync on a pipe),
 * the writer removes the FIFO, and the next periodic checkpoint succeeds. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ib.h"
#include "rpc_testutil.h"
#include "th.h"

/* Opens the FIFO's read end and reads until the writer has written something and closed it (10 s
 * bound). A read of 0 bytes before any data only means the blocked writer has not come out of
 * open() yet, so EOF counts only after data. Returns 0 on EOF. */
static int drain_fifo(const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0) return -1;
  char buf[65536];
  size_t got = 0;
  int rc = -1;
  for (double until = ib_now_s() + 10; ib_now_s() < until;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) < 0 && errno != EINTR) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) got += (size_t)n;
    if (n == 0 && got > 0) {
      rc = 0;
      break;
    }
    if (n == 0) usleep(10000);
    if (n < 0 && errno != EAGAIN && errno != EINTR) break;
  }
  close(fd);
  return rc;
}

static void test_info_during_held_checkpoint(void) {
  char dir[256], fifo[320];
  rt_tmpdir(dir, sizeof dir, "ckpt_stall");
  snprintf(fifo, sizeof fifo, "%s/store.ckpt.tmp", dir);
  TH_CHECK(mkfifo(fifo, 0600) == 0);
  const char *extra[] = {"--ckpt-dir", dir, "--ckpt-period", "0.2", NULL};
  rt_server s;
  if (rt_shard_start(&s, extra) != 0) {
    rt_rmdir(dir);
    return;
  }
  usleep(700000); /* the first periodic checkpoint started at 0.2 s and is blocked in the FIFO */
  rt_client c;
  rt_client_open(&c, s.target, NULL);
  ibrl_InfoReply info;
  grpc_status_code st = rt_info(&c, &info, 2000);
  TH_CHECK_MSG(st == GRPC_STATUS_OK, "Info during a held-up checkpoint: %s (want OK within 2 s)",
               wire_status_name(st));
  if (st == GRPC_STATUS_OK)
    TH_CHECK_MSG(info.checkpoints == 0, "the checkpoint was not held up (%llu done): the test proves nothing",
                 (unsigned long long)info.checkpoints);
  rt_items it = {.actor = 3, .first_seq = 0, .n = 16, .obs_dim = 6, .act_dim = 4, .nan_at = -1, .proposer = 1};
  char details[512] = "";
  st = rt_insert(&c, "online", &it, NULL, details, sizeof details, 2000);
  TH_CHECK_MSG(st == GRPC_STATUS_OK, "Insert during a held-up checkpoint: %s %s", wire_status_name(st), details);

  if (drain_fifo(fifo) != 0) {
    TH_CHECK_MSG(0, "could not drain the checkpoint FIFO %s", fifo);
    kill(s.pid, SIGKILL); /* its main thread is stuck in the checkpoint: SIGTERM would not stop it */
    rt_server_stop(&s, SIGKILL);
    rt_client_close(&c);
    rt_rmdir(dir);
    return;
  }
  /* The held checkpoint fails (fsync on a pipe) and removes the FIFO; a later one succeeds. */
  uint64_t done = 0;
  for (double until = ib_now_s() + 10; ib_now_s() < until && done == 0;) {
    usleep(100000);
    if (rt_info(&c, &info, 2000) == GRPC_STATUS_OK) done = info.checkpoints;
  }
  TH_CHECK_MSG(done >= 1, "no checkpoint succeeded within 10 s after the FIFO was drained");
  rt_client_close(&c);
  rt_shard_stop_ok(&s);
  rt_rmdir(dir);
}

static const th_case cases[] = {
    {"Info and Insert answer while a checkpoint is held up", test_info_during_held_checkpoint},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN); /* a closed FIFO or socket gives EPIPE instead */
  grpc_init();
  int rc = th_main(argc, argv, cases);
  grpc_shutdown_blocking();
  return rc;
}
