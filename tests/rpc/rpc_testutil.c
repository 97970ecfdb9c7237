/* rpc_testutil.c: see rpc_testutil.h. The child's stdout is a pipe polled for the
 * "listening on" line; its stderr is inherited so server logs land in the test output. The
 * client uses one pluck CQ and runs each call as: initial metadata, one SEND_MESSAGE batch per
 * message, then close + receive (grpc-core.md, client streaming). */
#include "rpc_testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "th.h"
#include <time.h>
#include <unistd.h>

#include <grpc/support/alloc.h>

#include "ib.h"
#include "replay_client.h"

static const char *bin_path(void) {
  const char *b = getenv("IBRL_REPLAY_BIN");
  return b != NULL ? b : IB_BINARY_DIR "/bin/ibrl-replay";
}

static int wait_exit(pid_t pid, double timeout_s) {
  double t0 = ib_now_s();
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (ib_now_s() - t0 > timeout_s) return -1;
    usleep(10000);
  }
}

int rt_server_start(rt_server *s, const char *const *args, int *exit_code) {
  memset(s, 0, sizeof *s);
  if (exit_code) *exit_code = -1;
  int fd[2];
  IB_CHECK(pipe(fd) == 0);
  const char *argv[64];
  int n = 0;
  argv[n++] = bin_path();
  argv[n++] = "--port";
  argv[n++] = "0";
  for (int i = 0; args != NULL && args[i] != NULL && n < 62; i++) argv[n++] = args[i];
  argv[n] = NULL;
  pid_t pid = fork();
  IB_CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fd[1]);
  char buf[256];
  size_t len = 0;
  double t0 = ib_now_s();
  int ok = 0;
  while (ib_now_s() - t0 < 10.0 && len + 1 < sizeof buf) {
    struct pollfd p = {fd[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t k = read(fd[0], buf + len, 1);
    if (k <= 0) break; /* the child closed stdout: it exited */
    len += (size_t)k;
    if (buf[len - 1] == '\n') {
      buf[len] = '\0';
      const char *colon = strrchr(buf, ':');
      if (strncmp(buf, "listening on ", 13) == 0 && colon != NULL) {
        s->port = atoi(colon + 1);
        ok = s->port > 0;
      }
      break;
    }
  }
  close(fd[0]); /* the server writes nothing more to stdout after the port line */
  s->pid = pid;
  if (!ok) {
    int code = wait_exit(pid, 5.0);
    if (code < 0) {
      kill(pid, SIGKILL);
      wait_exit(pid, 5.0);
    }
    if (exit_code) *exit_code = code;
    s->pid = 0;
    return -1;
  }
  snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
  return 0;
}

int rt_server_stop(rt_server *s, int sig) {
  if (s->pid <= 0) return -1;
  kill(s->pid, sig);
  int code = wait_exit(s->pid, 20.0);
  if (code < 0) {
    kill(s->pid, SIGKILL);
    wait_exit(s->pid, 5.0);
  }
  s->pid = 0;
  return code;
}

int rt_run_binary(const char *const *args) {
  const char *argv[64];
  int n = 0;
  argv[n++] = bin_path();
  for (int i = 0; args[i] != NULL && n < 63; i++) argv[n++] = args[i];
  argv[n] = NULL;
  pid_t pid = fork();
  IB_CHECK(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  int code = wait_exit(pid, 10.0);
  if (code < 0) {
    kill(pid, SIGKILL);
    wait_exit(pid, 5.0);
  }
  return code;
}

void rt_client_open(rt_client *c, const char *target, const char *token) {
  memset(c, 0, sizeof *c);
  wire_channel_opts o = {64L * 1024 * 1024, NULL, 0, 0};
  c->ch = wire_channel_create(target, &o);
  IB_CHECK(c->ch != NULL);
  c->cq = grpc_completion_queue_create_for_pluck(NULL);
  wire_auth_init(&c->auth, token);
}

void rt_client_close(rt_client *c) {
  grpc_completion_queue_shutdown(c->cq);
  while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(c->cq);
  grpc_channel_destroy(c->ch);
  wire_auth_free(&c->auth);
}

static int run_batch(rt_client *c, grpc_call *call, grpc_op *ops, size_t n, void *tag) {
  grpc_call_error e = grpc_call_start_batch(call, ops, n, tag, NULL);
  IB_CHECK(e == GRPC_CALL_OK);
  grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  IB_CHECK(ev.type == GRPC_OP_COMPLETE);
  return ev.success;
}

grpc_status_code rt_call(rt_client *c, const char *path, grpc_byte_buffer *const *msgs, size_t n,
                         grpc_byte_buffer **resp, char *details, size_t cap, long timeout_ms) {
  if (resp) *resp = NULL;
  grpc_slice method = grpc_slice_from_copied_string(path);
  grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, method, NULL,
                                             wire_deadline_ms(timeout_ms), NULL);
  grpc_slice_unref(method);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  op.data.send_initial_metadata.count = c->auth.set ? 1 : 0;
  op.data.send_initial_metadata.metadata = c->auth.set ? &c->auth.md : NULL;
  run_batch(c, call, &op, 1, (void *)1);
  for (size_t i = 0; i < n; i++) {
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = msgs[i];
    if (!run_batch(c, call, &op, 1, (void *)2)) break; /* the server already ended the call */
  }
  grpc_metadata_array imd, tmd;
  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  grpc_byte_buffer *rbb = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice det;
  const char *err = NULL;
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[1].data.recv_initial_metadata.recv_initial_metadata = &imd;
  ops[2].op = GRPC_OP_RECV_MESSAGE;
  ops[2].data.recv_message.recv_message = &rbb;
  ops[3].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[3].data.recv_status_on_client.trailing_metadata = &tmd;
  ops[3].data.recv_status_on_client.status = &status;
  ops[3].data.recv_status_on_client.status_details = &det;
  ops[3].data.recv_status_on_client.error_string = &err;
  run_batch(c, call, ops, 4, (void *)3);
  if (details != NULL && cap > 0) {
    size_t l = GRPC_SLICE_LENGTH(det);
    if (l >= cap) l = cap - 1;
    memcpy(details, GRPC_SLICE_START_PTR(det), l);
    details[l] = '\0';
  }
  grpc_slice_unref(det);
  gpr_free((void *)err);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  if (resp != NULL) *resp = rbb;
  else if (rbb != NULL) grpc_byte_buffer_destroy(rbb);
  grpc_call_unref(call);
  return status;
}

/* ---- items ---- */

static void item_get(void *arg, size_t i, ibrl_Item *it) {
  const rt_items *d = arg;
  float v = (float)(d->actor * 10000.0 + (double)(d->first_seq + i));
  it->obs_count = (pb_size_t)(d->wrong_obs_n > 0 ? d->wrong_obs_n : d->obs_dim);
  for (int j = 0; j < (int)it->obs_count; j++) it->obs[j] = v + (float)j;
  if ((int)i == d->nan_at) it->obs[0] = NAN;
  it->next_obs_count = (pb_size_t)d->obs_dim;
  for (int j = 0; j < d->obs_dim; j++) it->next_obs[j] = v + 100.0f + (float)j;
  it->action_count = (pb_size_t)d->act_dim;
  for (int j = 0; j < d->act_dim; j++) it->action[j] = -v - (float)j;
  it->reward = v;
  it->discount = 0.99f;
  it->proposer = d->proposer;
  it->actor_id = d->actor;
  it->seq = d->first_seq + i;
  it->weight_version = 3;
  it->episode_end = false;
  it->episode_success = false;
}

grpc_byte_buffer *rt_insert_msg(const char *table, const rt_items *it) {
  ibrl_InsertRequest *req = ib_xcalloc(1, sizeof *req);
  snprintf(req->table, sizeof req->table, "%s", table);
  ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
  wire_items_src src = {it->n, item_get, (void *)it, scratch};
  wire_items_set_src(&req->items, &src);
  grpc_byte_buffer *bb = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_InsertRequest_fields, req) == IB_OK);
  free(scratch);
  free(req);
  return bb;
}

grpc_status_code rt_insert(rt_client *c, const char *table, const rt_items *it, ibrl_InsertReply *rep,
                           char *details, size_t cap, long timeout_ms) {
  grpc_byte_buffer *bb = rt_insert_msg(table, it);
  grpc_byte_buffer *resp = NULL;
  grpc_status_code st = rt_call(c, WIRE_PATH_INSERT, &bb, 1, &resp, details, cap, timeout_ms);
  grpc_byte_buffer_destroy(bb);
  if (st == GRPC_STATUS_OK && rep != NULL) {
    *rep = (ibrl_InsertReply)ibrl_InsertReply_init_zero;
    IB_CHECK(wire_decode(rep, ibrl_InsertReply_fields, resp, "InsertReply") == IB_OK);
  }
  if (resp) grpc_byte_buffer_destroy(resp);
  return st;
}

static int sample_put(void *arg, size_t i, const ibrl_Item *it) {
  rt_sample *s = arg;
  if (i >= IB_ARRAY_LEN(s->reward)) return 1;
  s->reward[i] = it->reward;
  s->proposer[i] = it->proposer;
  float v = it->reward;
  int ok = it->obs_count > 0 && it->next_obs_count == it->obs_count && it->action_count > 0;
  for (pb_size_t j = 0; ok && j < it->obs_count; j++)
    ok = it->obs[j] == v + (float)j && it->next_obs[j] == v + 100.0f + (float)j;
  for (pb_size_t j = 0; ok && j < it->action_count; j++) ok = it->action[j] == -v - (float)j;
  s->intact[i] = ok;
  return 0;
}

grpc_status_code rt_sample_call(rt_client *c, uint32_t batch, double demo_fraction, rt_sample *out,
                                char *details, size_t cap, long timeout_ms) {
  ibrl_SampleRequest req = ibrl_SampleRequest_init_zero;
  req.batch_size = batch;
  if (demo_fraction >= 0 || isnan(demo_fraction)) {
    req.has_mix = true;
    req.mix.demo_fraction = (float)demo_fraction;
  }
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_SampleRequest_fields, &req) == IB_OK);
  grpc_status_code st = rt_call(c, WIRE_PATH_SAMPLE, &bb, 1, &resp, details, cap, timeout_ms);
  grpc_byte_buffer_destroy(bb);
  out->n = 0;
  if (st == GRPC_STATUS_OK) {
    ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
    out->rep = (ibrl_SampleReply)ibrl_SampleReply_init_zero;
    wire_items_sink sink = {sample_put, out, scratch, IB_ARRAY_LEN(out->reward), 0};
    wire_items_set_sink(&out->rep.items, &sink);
    IB_CHECK(wire_decode(&out->rep, ibrl_SampleReply_fields, resp, "SampleReply") == IB_OK);
    out->n = sink.n;
    free(scratch);
  }
  if (resp) grpc_byte_buffer_destroy(resp);
  return st;
}

grpc_status_code rt_info(rt_client *c, ibrl_InfoReply *out, long timeout_ms) {
  ibrl_InfoRequest req = ibrl_InfoRequest_init_zero;
  grpc_byte_buffer *bb = NULL, *resp = NULL;
  IB_CHECK(wire_encode(&bb, ibrl_InfoRequest_fields, &req) == IB_OK);
  grpc_status_code st = rt_call(c, WIRE_PATH_INFO, &bb, 1, &resp, NULL, 0, timeout_ms);
  grpc_byte_buffer_destroy(bb);
  if (st == GRPC_STATUS_OK) {
    *out = (ibrl_InfoReply)ibrl_InfoReply_init_zero;
    IB_CHECK(wire_decode(out, ibrl_InfoReply_fields, resp, "InfoReply") == IB_OK);
  }
  if (resp) grpc_byte_buffer_destroy(resp);
  return st;
}

void rt_tmpdir(char *out, size_t cap, const char *tag) {
  snprintf(out, cap, "/tmp/ibrl_rpc_%s_%d_XXXXXX", tag, (int)getpid());
  IB_CHECK(mkdtemp(out) != NULL);
}

void rt_rmdir(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int rt_shard_start(rt_server *s, const char *const *extra) {
  const char *args[40] = {"--obs-dim", "6", "--act-dim", "4", "--online-capacity", "5000", "--demo-capacity", "1000",
                          "--threads", "4"};
  int n = 10;
  for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++) args[n++] = extra[i];
  args[n] = NULL;
  int code;
  int rc = rt_server_start(s, args, &code);
  TH_CHECK_MSG(rc == 0, "server did not start (exit code %d)", code);
  return rc;
}

void rt_shard_stop_ok(rt_server *s) {
  int code = rt_server_stop(s, SIGTERM);
  TH_CHECK_MSG(code == 0, "server exit code %d after SIGTERM", code);
}

rc_client *rt_rc_open(const char *shards, const char *token, uint64_t seed) {
  rc_opts o = {0};
  o.shards = shards;
  o.token = token;
  o.deadline_ms = 3000;
  o.seed = seed;
  rc_client *c = NULL;
  int rc = rc_client_open(&c, &o);
  TH_CHECK_MSG(rc == IB_OK, "open %s: %s", shards, ib_errmsg());
  return rc == IB_OK ? c : NULL;
}

int rt_server_once(rt_server *s, int *up, const char *const *args) {
  if (*up) return 1;
  int code;
  if (rt_server_start(s, args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay did not start (exit %d)", code);
    return 0;
  }
  *up = 1;
  return 1;
}

int rt_freeze(pid_t pid) {
  if (kill(pid, SIGSTOP) != 0) return -1;
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
  for (int tries = 0; tries < 500; tries++) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    int running = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.') continue;
      char path[384], buf[256];
      snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
      FILE *f = fopen(path, "r");
      if (f == NULL) continue;
      size_t k = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      buf[k] = '\0';
      const char *rp = strrchr(buf, ')'); /* the state follows the command name */
      if (rp == NULL || rp[1] != ' ' || (rp[2] != 'T' && rp[2] != 't')) running = 1;
    }
    closedir(d);
    if (!running) return 0;
    usleep(10000);
  }
  return -1;
}

int rt_main(int argc, char **argv, const th_case *cases) {
  grpc_init();
  int rc = th_main(argc, argv, cases);
  grpc_shutdown_blocking();
  return rc;
}
