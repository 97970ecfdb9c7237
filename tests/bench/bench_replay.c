/* bench_replay.c: `ibrl-bench replay`: insert and sample throughput of the replay client
 * (common/rpc/replay_client.h) against an ibrl-replay child on 127.0.0.1, next to a raw gRPC
 * baseline for the same bytes, in the same run.
 *
 * Design. Items are the paper's state setting: obs 69 (23 x stack 3), action chunk 7, so one
 * encoded item is ~600 B, in batches of 256. Four phases per thread count (1 and 4 client
 * threads, each with its own client and channel):
 *   insert/ours  rc_writer streams batches; its retry buffer of 1024 items makes it close the
 *                stream (and wait for the acknowledgement) every 4 batches;
 *   insert/raw   the same pattern on bare gRPC core: 4 pre-encoded InsertRequest messages of the
 *                same bytes per client stream, to a server whose handler does nothing;
 *   sample/ours  rc_sample of 256 rows (request, server-side sampling and encoding, decoding into
 *                the caller's batch);
 *   sample/raw   a unary call whose reply is a pre-encoded SampleReply of the same 256 items,
 *                received and dropped without decoding.
 * The raw server is a child process running the common/rpc server framework with no-op
 * handlers and the same 4 worker threads as ibrl-replay, so both sides pay the same process and
 * scheduling costs and the ratio isolates what the client, the store and the encoding add.
 * The raw child is forked before gRPC is initialised in this process (gRPC does not survive a
 * fork). Every phase runs for --seconds (default 3 s); the default run takes about 35 s. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>

#include "ib.h"
#include "replay_client.h"
#include "rng.h"
#include "rpc_server.h"
#include "wire.h"

#define RAW_INSERT_PATH "/ibrl.BenchRaw/Insert"
#define RAW_SAMPLE_PATH "/ibrl.BenchRaw/Sample"
#define MSGS_PER_STREAM 4
#define MAX_THREADS 8

typedef struct bcfg {
  int obs_dim, act_dim, batch;
  double seconds;
  const char *replay_bin;
} bcfg;

/* ---- test items ---- */

static void fill_batch(rc_batch *b, int n, uint64_t seed) {
  rng r;
  rng_seed(&r, seed, "bench", 0, "items");
  b->n = n;
  for (size_t i = 0; i < (size_t)n * b->obs_dim; i++) b->obs[i] = rng_normal(&r), b->next_obs[i] = rng_normal(&r);
  for (size_t i = 0; i < (size_t)n * b->act_dim; i++) b->action[i] = 2 * rng_uniform(&r) - 1;
  for (int i = 0; i < n; i++) {
    b->reward[i] = rng_uniform(&r) < 0.05f;
    b->discount[i] = 0.970299f;
    b->proposer[i] = RC_PROPOSER_RL;
    b->weight_version[i] = 1;
  }
}

static void item_get(void *arg, size_t i, ibrl_Item *it) {
  const rc_batch *b = arg;
  size_t od = (size_t)b->obs_dim, ad = (size_t)b->act_dim;
  *it = (ibrl_Item)ibrl_Item_init_zero;
  it->obs_count = (pb_size_t)od;
  memcpy(it->obs, b->obs + i * od, od * sizeof(float));
  it->next_obs_count = (pb_size_t)od;
  memcpy(it->next_obs, b->next_obs + i * od, od * sizeof(float));
  it->action_count = (pb_size_t)ad;
  memcpy(it->action, b->action + i * ad, ad * sizeof(float));
  it->reward = b->reward[i];
  it->discount = b->discount[i];
  it->proposer = b->proposer[i];
  it->actor_id = 1;
  it->seq = i;
  it->weight_version = b->weight_version[i];
}

/* Encodes the batch as an InsertRequest (insert = 1) or a SampleReply into one flat slice. */
static grpc_slice encode_batch(const rc_batch *b, int insert) {
  ibrl_Item *scratch = ib_xmalloc(sizeof *scratch);
  wire_items_src src = {(size_t)b->n, item_get, (void *)b, scratch};
  grpc_byte_buffer *bb = NULL;
  if (insert) {
    ibrl_InsertRequest req = ibrl_InsertRequest_init_zero;
    snprintf(req.table, sizeof req.table, "online");
    wire_items_set_src(&req.items, &src);
    IB_CHECK(wire_encode(&bb, ibrl_InsertRequest_fields, &req) == IB_OK);
  } else {
    ibrl_SampleReply rep = ibrl_SampleReply_init_zero;
    wire_items_set_src(&rep.items, &src);
    rep.n_online = (uint32_t)b->n;
    rep.online_size = 100000;
    IB_CHECK(wire_encode(&bb, ibrl_SampleReply_fields, &rep) == IB_OK);
  }
  free(scratch);
  grpc_byte_buffer_reader rd;
  IB_CHECK(grpc_byte_buffer_reader_init(&rd, bb));
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  grpc_byte_buffer_destroy(bb);
  return s;
}

/* ---- the raw no-op server (child process) ---- */

static grpc_slice g_sample_reply; /* child: the pre-encoded reply */

static void raw_sample(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep) {
  (void)ctx, (void)info, (void)req;
  rep->bb = grpc_raw_byte_buffer_create(&g_sample_reply, 1);
}

static int raw_insert(void *ctx, rpc_call_info *info, const grpc_byte_buffer *msg, rpc_reply *rep) {
  (void)ctx, (void)info;
  if (msg == NULL) {
    ibrl_InsertReply r = ibrl_InsertReply_init_zero;
    IB_CHECK(wire_encode(&rep->bb, ibrl_InsertReply_fields, &r) == IB_OK);
  }
  return 0;
}

/* Runs in the forked child: serves until the parent closes `ctl_fd`. */
static void raw_server_main(const bcfg *cfg, int port_fd, int ctl_fd) {
  grpc_init();
  rc_batch b;
  rc_batch_init(&b, cfg->batch, cfg->obs_dim, cfg->act_dim);
  fill_batch(&b, cfg->batch, 2);
  g_sample_reply = encode_batch(&b, 0);
  rc_batch_free(&b);
  rpc_method m[2] = {
      {RAW_INSERT_PATH, RPC_CLIENT_STREAM, NULL, raw_insert, NULL},
      {RAW_SAMPLE_PATH, RPC_UNARY, raw_sample, NULL, NULL},
  };
  rpc_server_opts o = {"127.0.0.1", 0, 4, 64L * 1024 * 1024, NULL, NULL, NULL};
  rpc_server *srv = NULL;
  int port = -1;
  if (rpc_server_create(&srv, &o, m, 2) == IB_OK) port = rpc_server_port(srv);
  else fprintf(stderr, "bench replay: raw server: %s\n", ib_errmsg());
  IB_CHECK(write(port_fd, &port, sizeof port) == (ssize_t)sizeof port);
  close(port_fd);
  char c;
  while (read(ctl_fd, &c, 1) > 0) {
  }
  rpc_server_destroy(srv);
  grpc_slice_unref(g_sample_reply);
  grpc_shutdown_blocking();
  _exit(0);
}

/* ---- the ibrl-replay child ---- */

static pid_t start_replay(const bcfg *cfg, int *port) {
  int fd[2];
  IB_CHECK(pipe(fd) == 0);
  char od[16], ad[16];
  snprintf(od, sizeof od, "%d", cfg->obs_dim);
  snprintf(ad, sizeof ad, "%d", cfg->act_dim);
  pid_t pid = fork();
  IB_CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2); /* its INFO log would interleave with the table */
    execl(cfg->replay_bin, cfg->replay_bin, "--port", "0", "--obs-dim", od, "--act-dim", ad, "--online-capacity",
          "300000", "--demo-capacity", "1000", "--threads", "4", "--max-message-mb", "64", (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  FILE *f = fdopen(fd[0], "r");
  char line[256];
  *port = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    char *colon = strrchr(line, ':');
    if (strncmp(line, "listening on ", 13) == 0 && colon != NULL) {
      *port = atoi(colon + 1);
      break;
    }
  }
  fclose(f);
  return pid;
}

/* ---- client threads ---- */

typedef struct job {
  const bcfg *cfg;
  int kind; /* 0 insert ours, 1 insert raw, 2 sample ours, 3 sample raw */
  int tid;
  const char *target;
  const grpc_slice *payload; /* raw: the pre-encoded message */
  atomic_int *stop;
  uint64_t items;
  int err;
  char msg[256];
} job;

static void *job_ours(job *j) {
  rc_opts o = {0};
  o.shards = j->target;
  o.deadline_ms = 10000;
  o.max_message_bytes = 64L * 1024 * 1024;
  o.seed = (uint64_t)j->tid;
  rc_client *c = NULL;
  if (rc_client_open(&c, &o) != IB_OK) {
    j->err = 1;
    snprintf(j->msg, sizeof j->msg, "%s", ib_errmsg());
    return NULL;
  }
  rc_batch b;
  rc_batch_init(&b, j->cfg->batch, j->cfg->obs_dim, j->cfg->act_dim);
  if (j->kind == 0) {
    fill_batch(&b, j->cfg->batch, 1);
    rc_writer *w = NULL;
    /* A fresh actor id per thread and phase: reused seqs would be dropped as duplicates. */
    static atomic_uint next_actor;
    IB_CHECK(rc_writer_open(&w, c, "online", atomic_fetch_add(&next_actor, 1), 0, 0) == IB_OK);
    int rc = IB_OK;
    while (!atomic_load(j->stop) && rc == IB_OK) rc = rc_writer_write(w, &b);
    if (rc == IB_OK) rc = rc_writer_flush(w, -1);
    if (rc != IB_OK) {
      j->err = 1;
      snprintf(j->msg, sizeof j->msg, "%s", ib_errmsg());
    }
    rc_writer_stats st;
    rc_writer_stats_get(w, &st);
    j->items = st.acked;
    rc_writer_close(w);
  } else {
    while (!atomic_load(j->stop)) {
      int rc = rc_sample(c, &b, j->cfg->batch, -1);
      if (rc != IB_OK) {
        j->err = 1;
        snprintf(j->msg, sizeof j->msg, "%s", ib_errmsg());
        break;
      }
      j->items += (uint64_t)b.n;
    }
  }
  rc_batch_free(&b);
  rc_client_close(c);
  return NULL;
}

/* One raw batch of ops; returns 0 on success. */
static int raw_batch(grpc_call *call, grpc_completion_queue *cq, grpc_op *ops, size_t n, void *tag) {
  IB_CHECK(grpc_call_start_batch(call, ops, n, tag, NULL) == GRPC_CALL_OK);
  grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : -1;
}

static void *job_raw(job *j) {
  grpc_init();
  wire_channel_opts co = {64L * 1024 * 1024, NULL, 0};
  grpc_channel *ch = wire_channel_create(j->target, &co);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  int per_call = j->kind == 1 ? MSGS_PER_STREAM : 1;
  const char *path = j->kind == 1 ? RAW_INSERT_PATH : RAW_SAMPLE_PATH;
  ibrl_SampleRequest sreq = ibrl_SampleRequest_init_zero;
  sreq.batch_size = (uint32_t)j->cfg->batch;
  grpc_byte_buffer *sreq_bb = NULL;
  IB_CHECK(wire_encode(&sreq_bb, ibrl_SampleRequest_fields, &sreq) == IB_OK);
  while (!atomic_load(j->stop) && !j->err) {
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, grpc_slice_from_static_string(path),
                                               NULL, wire_deadline_ms(10000), NULL);
    grpc_metadata_array mi, mt;
    grpc_metadata_array_init(&mi);
    grpc_metadata_array_init(&mt);
    grpc_byte_buffer *reply = NULL;
    grpc_status_code st = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    const char *es = NULL;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    int ok = 1;
    if (j->kind == 3) {
      /* Unary: one 6-op batch, as rc__unary does. */
      ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
      ops[1].op = GRPC_OP_SEND_MESSAGE;
      ops[1].data.send_message.send_message = sreq_bb;
      ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
      ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
      ops[3].data.recv_initial_metadata.recv_initial_metadata = &mi;
      ops[4].op = GRPC_OP_RECV_MESSAGE;
      ops[4].data.recv_message.recv_message = &reply;
      ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
      ops[5].data.recv_status_on_client.trailing_metadata = &mt;
      ops[5].data.recv_status_on_client.status = &st;
      ops[5].data.recv_status_on_client.status_details = &details;
      ops[5].data.recv_status_on_client.error_string = &es;
      raw_batch(call, cq, ops, 6, &ops[0]);
    } else {
      /* Client stream: initial metadata, one batch per message, then close and receive. */
      ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
      ok = raw_batch(call, cq, ops, 1, &ops[0]) == 0;
      for (int k = 0; k < per_call && ok; k++) {
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create((grpc_slice *)j->payload, 1);
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = bb;
        ok = raw_batch(call, cq, ops, 1, &ops[0]) == 0;
        grpc_byte_buffer_destroy(bb);
      }
      memset(ops, 0, sizeof ops);
      ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
      ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
      ops[1].data.recv_initial_metadata.recv_initial_metadata = &mi;
      ops[2].op = GRPC_OP_RECV_MESSAGE;
      ops[2].data.recv_message.recv_message = &reply;
      ops[3].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
      ops[3].data.recv_status_on_client.trailing_metadata = &mt;
      ops[3].data.recv_status_on_client.status = &st;
      ops[3].data.recv_status_on_client.status_details = &details;
      ops[3].data.recv_status_on_client.error_string = &es;
      raw_batch(call, cq, ops, 4, &ops[0]);
    }
    if (st != GRPC_STATUS_OK || !ok) {
      j->err = 1;
      snprintf(j->msg, sizeof j->msg, "raw call %s: %s", path, wire_status_name(st));
    } else {
      j->items += (uint64_t)per_call * (uint64_t)j->cfg->batch;
    }
    if (reply) grpc_byte_buffer_destroy(reply);
    grpc_metadata_array_destroy(&mi);
    grpc_metadata_array_destroy(&mt);
    grpc_slice_unref(details);
    gpr_free((void *)es);
    grpc_call_unref(call);
  }
  grpc_byte_buffer_destroy(sreq_bb);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  grpc_channel_destroy(ch);
  grpc_shutdown();
  return NULL;
}

static void *job_main(void *arg) {
  job *j = arg;
  return j->kind == 1 || j->kind == 3 ? job_raw(j) : job_ours(j);
}

/* Runs `threads` jobs of `kind` for cfg->seconds; returns items/s, or -1 on error. */
static double run_phase(const bcfg *cfg, int kind, int threads, const char *target, const grpc_slice *payload) {
  atomic_int stop = 0;
  job jobs[MAX_THREADS];
  pthread_t th[MAX_THREADS];
  for (int t = 0; t < threads; t++) {
    jobs[t] = (job){cfg, kind, t, target, payload, &stop, 0, 0, ""};
    IB_CHECK(pthread_create(&th[t], NULL, job_main, &jobs[t]) == 0);
  }
  double t0 = ib_now_s();
  usleep((useconds_t)(cfg->seconds * 1e6));
  atomic_store(&stop, 1);
  uint64_t items = 0;
  int err = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    items += jobs[t].items;
    if (jobs[t].err) {
      fprintf(stderr, "bench replay: thread %d: %s\n", t, jobs[t].msg);
      err = 1;
    }
  }
  double dt = ib_now_s() - t0; /* includes the final flush of the writers */
  return err ? -1 : (double)items / dt;
}

/* ---- main ---- */

int bench_replay(int argc, char **argv); /* called by bench_main.c */

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench replay [--seconds S] [--batch N] [--obs-dim N] [--act-dim N] [--replay-bin PATH]\n"
          "Insert and sample throughput of the replay client against an ibrl-replay child on 127.0.0.1, with\n"
          "1 and 4 client threads, next to a raw gRPC baseline (no-op handlers, same bytes) in the same run.\n"
          "  --seconds S      length of each of the 8 phases [3]\n"
          "  --batch N        transitions per message [256]\n"
          "  --obs-dim N      stacked observation size [69]\n"
          "  --act-dim N      action chunk size [7]\n"
          "  --replay-bin P   the ibrl-replay binary [next to ibrl-bench]\n");
}

int bench_replay(int argc, char **argv) {
  bcfg cfg = {69, 7, 256, 3.0, NULL};
  static char default_bin[PATH_MAX];
  static const struct option lo[] = {{"seconds", required_argument, NULL, 's'}, {"batch", required_argument, NULL, 'b'},
                                     {"obs-dim", required_argument, NULL, 'o'}, {"act-dim", required_argument, NULL, 'a'},
                                     {"replay-bin", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
                                     {NULL, 0, NULL, 0}};
  optind = 1;
  int ch, li = 0;
  while ((ch = getopt_long(argc, argv, "", lo, &li)) != -1) {
    char *end = NULL;
    int bad = 0;
    switch (ch) {
      case 's': cfg.seconds = strtod(optarg, &end); bad = *end || !(cfg.seconds >= 0.2 && cfg.seconds <= 600); break;
      case 'b': cfg.batch = (int)strtol(optarg, &end, 10); bad = *end || cfg.batch < 1 || cfg.batch > 1024; break;
      case 'o': cfg.obs_dim = (int)strtol(optarg, &end, 10); bad = *end || cfg.obs_dim < 1 || cfg.obs_dim > 512; break;
      case 'a': cfg.act_dim = (int)strtol(optarg, &end, 10); bad = *end || cfg.act_dim < 1 || cfg.act_dim > 128; break;
      case 'r': cfg.replay_bin = optarg; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
    if (bad || (end != NULL && end == optarg)) {
      fprintf(stderr, "ibrl-bench replay: --%s '%s' is not a valid value (see --help)\n", lo[li].name, optarg);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ibrl-bench replay: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (cfg.replay_bin == NULL) {
    ssize_t n = readlink("/proc/self/exe", default_bin, sizeof default_bin - 16);
    if (n <= 0) {
      fprintf(stderr, "ibrl-bench replay: cannot find my own path HINT: pass --replay-bin\n");
      return 2;
    }
    default_bin[n] = '\0';
    char *slash = strrchr(default_bin, '/');
    snprintf(slash + 1, sizeof default_bin - (size_t)(slash + 1 - default_bin), "ibrl-replay");
    cfg.replay_bin = default_bin;
  }
  if (access(cfg.replay_bin, X_OK) != 0) {
    fprintf(stderr, "ibrl-bench replay: '%s' is not an executable HINT: build ibrl-replay or pass --replay-bin\n",
            cfg.replay_bin);
    return 2;
  }
  /* Children first: the raw server is forked before gRPC starts in this process. */
  int pfd[2], cfd[2];
  IB_CHECK(pipe(pfd) == 0 && pipe(cfd) == 0);
  pid_t raw_pid = fork();
  IB_CHECK(raw_pid >= 0);
  if (raw_pid == 0) {
    close(pfd[0]);
    close(cfd[1]);
    raw_server_main(&cfg, pfd[1], cfd[0]);
  }
  close(pfd[1]);
  close(cfd[0]);
  int raw_port = -1;
  if (read(pfd[0], &raw_port, sizeof raw_port) != (ssize_t)sizeof raw_port) raw_port = -1;
  close(pfd[0]);
  int replay_port = -1;
  pid_t replay_pid = start_replay(&cfg, &replay_port);
  int code = 0;
  if (raw_port <= 0 || replay_port <= 0) {
    fprintf(stderr, "bench replay: a server did not start (raw port %d, ibrl-replay port %d)\n", raw_port, replay_port);
    code = 1;
  }
  if (code == 0) {
    grpc_init();
    char raw_target[64], replay_target[64];
    snprintf(raw_target, sizeof raw_target, "127.0.0.1:%d", raw_port);
    snprintf(replay_target, sizeof replay_target, "127.0.0.1:%d", replay_port);
    rc_batch b;
    rc_batch_init(&b, cfg.batch, cfg.obs_dim, cfg.act_dim);
    fill_batch(&b, cfg.batch, 1);
    grpc_slice ins = encode_batch(&b, 1);
    grpc_slice smp = encode_batch(&b, 0);
    double item_b = (double)GRPC_SLICE_LENGTH(ins) / cfg.batch;
    rc_batch_free(&b);
    printf("ibrl-bench replay: obs %d, action %d, batch %d, %.0f B per encoded transition (InsertRequest %zu B, "
           "SampleReply %zu B); %.1f s per phase\n",
           cfg.obs_dim, cfg.act_dim, cfg.batch, item_b, GRPC_SLICE_LENGTH(ins), GRPC_SLICE_LENGTH(smp), cfg.seconds);
    printf("%-8s %-8s %10s %14s %10s %14s %10s %8s\n", "op", "threads", "ours/s", "ours MB/s", "raw/s", "raw MB/s",
           "batches/s", "ours/raw");
    static const char *names[] = {"insert", "sample"};
    const int thr[] = {1, 4};
    for (int op = 0; op < 2 && code == 0; op++) {
      for (int ti = 0; ti < 2 && code == 0; ti++) {
        fprintf(stderr, "  running %s with %d thread(s) ...\n", names[op], thr[ti]);
        double ours = run_phase(&cfg, op == 0 ? 0 : 2, thr[ti], replay_target, NULL);
        double raw = run_phase(&cfg, op == 0 ? 1 : 3, thr[ti], raw_target, op == 0 ? &ins : NULL);
        if (ours < 0 || raw < 0) {
          code = 1;
          break;
        }
        printf("%-8s %-8d %10.0f %14.1f %10.0f %14.1f %10.1f %7.0f%%\n", names[op], thr[ti], ours, ours * item_b / 1e6,
               raw, raw * item_b / 1e6, ours / cfg.batch, 100.0 * ours / raw);
        fflush(stdout);
      }
    }
    grpc_slice_unref(ins);
    grpc_slice_unref(smp);
    grpc_shutdown_blocking();
  }
  close(cfd[1]); /* the raw child stops when its control pipe closes */
  if (replay_pid > 0) kill(replay_pid, SIGTERM);
  int st;
  waitpid(raw_pid, &st, 0);
  if (replay_pid > 0) waitpid(replay_pid, &st, 0);
  return code;
}
