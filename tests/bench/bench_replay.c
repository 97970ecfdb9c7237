/* bench_replay.c: `ibrl-bench replay`: insert and sample throughput of the replay client
 * (common/rpc/replay_client.h) against an ibrl-replay child on 127.0.0.1, next to a raw gRPC
 * baseline for the same bytes, in the same run.
 *
 * Design. Items are the paper's state setting: obs 69 (23 x stack 3), action chunk 7, so one
 * encoded item is ~600 B, in batches of 256. The raw baseline sends the per-item encoding
 * (Items, 605 B a row); ibrl's client and shard send the same rows as ItemColumns (610 B a row:
 * 0.9% more bytes for ours to move; MB/s use the per-item size for every variant).
 * Phases per thread count (1 and 4 client threads, each with its own client and channel):
 *   insert/ours  rc_writer streams batches, pipelined as a bulk loader runs it (rc_writer_pipeline,
 *                max_pending 8192, the store's dedup window): it half-closes its stream every
 *                4096 rows (16 batches) and goes on with a fresh one while the reply comes;
 *   insert/raw   bare gRPC core: pre-encoded InsertRequest messages of the same bytes on one client
 *                stream per measurement, to a server whose handler does nothing: the method of
 *                docs/grpc-core.md whose figures anchors.md quotes (the raw baseline); with
 *                --raw-msgs N it closes the stream and waits for the reply every N messages;
 *   sample/ours  256 rows per batch through rc_sampler, as a learner would take them: one Sample
 *                request is kept in flight ahead of the batch being decoded (request, server-side
 *                sampling and encoding, decoding into the caller's batch); with --no-prefetch one
 *                rc_sample at a time instead. The no-op server of the "client" variant answers
 *                with its pre-encoded Items (it ignores the request's columns flag), so that column
 *                times the client's per-item decoder, while "full" uses columns end to end;
 *   sample/raw   a unary call whose reply is a pre-encoded SampleReply of the same 256 items,
 *                received and dropped without decoding; it follows the same pattern as ours: the
 *                next call is started before the current one is waited for (one call at a time
 *                with --no-prefetch), so the ratio compares like with like.
 *   proto        raw with the copies of the prototype whose figures anchors.md quotes ("raw gRPC
 *                figures"; grpc-core.md section 4: "nanopb encode into the slice, kernel send and
 *                receive, and the decode callback into the ring"): its client copies each Insert
 *                message into a fresh slice before it sends it, and each Sample reply out of gRPC's
 *                slices; its server copies each received message into a ring of PROTO_RING slots
 *                and builds each reply by copying 256 item fields drawn at random from a ring of
 *                PROTO_RING rows. The ring size is the prototype's ("a 64-item ring"); so small a
 *                ring stays in cache, which favours proto over a shard of 300,000 rows. It checks,
 *                deduplicates and validates nothing. Insert streams and calls as raw.
 * The raw server is a child process running the common/rpc server framework with no-op
 * handlers and the same worker threads as ibrl-replay (4, --server-threads, of which one per two calls in
 * progress takes calls, up to --server-pollers), so both sides pay the same process and
 * scheduling costs and the ratio isolates what the client, the store and the encoding add.
 * The proto server is a second such child. Both are forked before gRPC is initialised in this
 * process (gRPC does not survive a fork). The raw server answers the real method paths (Insert,
 * Sample, Info), so the replay client also runs against it: that "client" column isolates what the
 * client library adds to the transport, while "full" adds the ibrl-replay server's decoding,
 * validation, store and encoding.
 * Each configuration (operation x thread count) runs --rounds rounds (default 5); a round measures
 * the four variants for --seconds each (default 0.5 s) in a rotating order, so load changes on a
 * shared machine hit all four alike, and the table reports medians and the medians of the
 * per-round ratios. The default run takes about 50 s. A second table gives the CPU time per
 * transition of each process and, per round, the raw over full CPU ratio: the throughput ratio
 * a machine limited only by its CPU would show, which unlike the rates does not swing with the
 * load of a shared machine. Both processes of every variant run with the same malloc settings
 * as ibrl-replay (large freed blocks stay in the heap), so the ratios compare code, not
 * allocator policies. ibrl-replay runs with its default durability (ckpt) and no --ckpt-dir:
 * no checkpoint and no write-ahead log, nothing is written to disk.
 *
 * --only decode runs none of that: it times the shard's insert path (decode + store) in this
 * process, to see what of the shard's CPU per row is data work (see decode_bench below).
 *
 * --variant full|client|raw|proto runs one variant alone (ratios then show nan), to profile it.
 *
 * Latest figures (2026-11-24 23:55 - 11-25 00:00 UTC, a quiet "AMD EPYC" 2-vCPU VM in a fast phase,
 * 5 runs, each the median of 5 rounds): full/proto insert 82-90% with 1 client thread and 75-88%
 * with 4; sample one at a time (rc_sample) 76-88% and 72-85%; sample one ahead (rc_sampler, the
 * learner's since then) 69-111% and 71-77%. Against bare raw: insert 70-91% and 63-73%, one at a
 * time 72-83% and 67-79%, one ahead 62-105% and 61-65%. In the same VM's slower evening window
 * one ahead was at 61-74% of proto: the ratios move with the machine's phase.
 * docs/results/replay-throughput.md has the figures, the ceiling experiments and the history. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>

#include "cli.h"
#include "ib.h"
#include "itemcodec.h"
#include "replay_client.h"
#include "rng.h"
#include "rpc_server.h"
#include "rsrv_insert.h"
#include "store.h"
#include "wire.h"

#define RAW_INSERT_PATH WIRE_PATH_INSERT
#define RAW_SAMPLE_PATH WIRE_PATH_SAMPLE
#define MAX_THREADS 8
#define MAX_ROUNDS 64
#define NVARIANTS 4  /* full, client, raw, proto */
#define PROTO_RING 64 /* slots of the proto server's rings: the prototype's "64-item ring" */
/* The ibrl-replay child's online capacity; the prefill fills it, so the shard samples from 183 MB
 * as after the insert phase (before 24 Nov it wrote 10,240 rows, 6 MB: --only sample then gathered
 * from the CPU's cache). */
#define ONLINE_CAP 300000
#define STR_(x) #x
#define STR(x) STR_(x)
#define ONLINE_CAP_STR STR(ONLINE_CAP) /* the same number as text, for the child's argv */

typedef struct bcfg {
  int obs_dim, act_dim, batch, rounds;
  int only; /* -1 both, 0 insert, 1 sample */
  int threads; /* 0 = 1 and 4, else only this many client threads */
  int prefetch; /* sample/ours: 1 = rc_sampler (one sample in flight ahead), 0 = rc_sample */
  int variants; /* bit mask of the variants to run: 1 full, 2 client, 4 raw, 8 proto (--variant) */
  double seconds;
  const char *replay_bin;
  int server_threads; /* worker threads of both servers, ibrl-replay's --threads [4] */
  int server_pollers; /* of those, the most taking calls at once: ibrl-replay's --pollers; 0 = all [0] */
  int raw_msgs; /* insert/raw: messages per stream; 0 = one stream per measurement [0] */
} bcfg;

/* Messages the bench's writer sends per stream before it half-closes it and goes on with a fresh
 * one: it is pipelined (rc_writer_pipeline) with max_pending = the store's dedup window, as a bulk
 * loader would run it, so the batches that reach half the window (16 of 256 rows). */
static int writer_msgs(const bcfg *cfg) { return (STORE_DEDUP_WINDOW / 2 + cfg->batch - 1) / cfg->batch; }

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

/* ---- the raw no-op server and the proto server (child processes) ---- */

static grpc_slice g_sample_reply; /* child: the pre-encoded reply */

/* The proto server's state (top of file): PROTO_RING message buffers that received Inserts are
 * copied into (grown to the largest message seen), and PROTO_RING item fields of the pre-encoded
 * reply, the rows a reply is built from, followed by the reply's other fields. */
typedef struct proto_srv {
  uint8_t *msg[PROTO_RING];
  size_t msg_cap[PROTO_RING];
  atomic_uint next_msg;
  uint8_t *rows;   /* PROTO_RING slots of row_stride bytes: one encoded item field each */
  size_t row_stride, row_len[PROTO_RING];
  const uint8_t *tail; /* the reply's fields after its items, in g_sample_reply */
  size_t tail_len;
  int batch;
} proto_srv;

static proto_srv *g_proto; /* child: NULL in the raw server */

/* Copies the bytes of bb, slice by slice, to dst (room for grpc_byte_buffer_length(bb) bytes):
 * what a nanopb decode with pb_read does, proto's decode on both sides. */
static void bb_copy(uint8_t *dst, const grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader rd;
  IB_CHECK(grpc_byte_buffer_reader_init(&rd, (grpc_byte_buffer *)bb)); /* the reader API is not const */
  grpc_slice sl;
  while (grpc_byte_buffer_reader_next(&rd, &sl)) {
    memcpy(dst, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl));
    dst += GRPC_SLICE_LENGTH(sl);
    grpc_slice_unref(sl);
  }
  grpc_byte_buffer_reader_destroy(&rd);
}

static uint64_t pv_varint(const uint8_t **p, const uint8_t *end) {
  uint64_t v = 0;
  for (int sh = 0; *p < end && sh < 64; sh += 7) {
    uint8_t c = *(*p)++;
    v |= (uint64_t)(c & 0x7f) << sh;
    if (!(c & 0x80)) return v;
  }
  IB_CHECK(0 && "bench replay: bad varint in the pre-encoded reply");
  return 0;
}

/* Splits the pre-encoded reply into its top-level fields: the first `batch` are the items, which
 * fill the row ring in turn; the rest is the tail. */
static proto_srv *proto_srv_create(int batch) {
  proto_srv *ps = ib_xcalloc(1, sizeof *ps);
  ps->batch = batch;
  const uint8_t *p0 = GRPC_SLICE_START_PTR(g_sample_reply), *p = p0, *end = p0 + GRPC_SLICE_LENGTH(g_sample_reply);
  const uint8_t **start = ib_xmalloc((size_t)batch * sizeof *start);
  size_t *len = ib_xmalloc((size_t)batch * sizeof *len);
  uint32_t items_field = 0;
  for (int k = 0; k < batch; k++) {
    start[k] = p;
    uint64_t tag = pv_varint(&p, end);
    IB_CHECK((tag & 7) == 2 && (k == 0 || (uint32_t)(tag >> 3) == items_field));
    items_field = (uint32_t)(tag >> 3);
    p += pv_varint(&p, end);
    IB_CHECK(p <= end);
    len[k] = (size_t)(p - start[k]);
    ps->row_stride = IB_MAX(ps->row_stride, len[k]);
  }
  ps->tail = p;
  ps->tail_len = (size_t)(end - p);
  ps->rows = ib_xmalloc(PROTO_RING * ps->row_stride);
  for (int r = 0; r < PROTO_RING; r++) {
    memcpy(ps->rows + (size_t)r * ps->row_stride, start[r % batch], len[r % batch]);
    ps->row_len[r] = len[r % batch];
  }
  free(start);
  free(len);
  return ps;
}

static void proto_srv_free(proto_srv *ps) {
  if (ps == NULL) return;
  for (int k = 0; k < PROTO_RING; k++) free(ps->msg[k]);
  free(ps->rows);
  free(ps);
}

/* The prototype's decode callback: the message's bytes copied out of gRPC's slices into the next
 * ring buffer (PROTO_RING buffers: two calls reach the same one only PROTO_RING messages apart). */
static void proto_insert(proto_srv *ps, const grpc_byte_buffer *msg) {
  size_t len = grpc_byte_buffer_length((grpc_byte_buffer *)msg);
  unsigned k = atomic_fetch_add(&ps->next_msg, 1) % PROTO_RING;
  if (ps->msg_cap[k] < len) {
    free(ps->msg[k]);
    ps->msg[k] = ib_xmalloc(len);
    ps->msg_cap[k] = len;
  }
  bb_copy(ps->msg[k], msg);
}

/* The prototype's encode callback: `batch` item fields copied from random ring rows into a fresh
 * reply, then the reply's other fields. */
static grpc_byte_buffer *proto_sample(proto_srv *ps) {
  static __thread rng r;
  static __thread int seeded;
  if (!seeded) rng_seed(&r, (uint64_t)pthread_self(), "bench", 0, "proto"), seeded = 1;
  int pick[1024];
  size_t total = ps->tail_len;
  for (int k = 0; k < ps->batch; k++) {
    pick[k] = (int)rng_below(&r, PROTO_RING);
    total += ps->row_len[pick[k]];
  }
  grpc_slice s = grpc_slice_malloc(total);
  uint8_t *d = GRPC_SLICE_START_PTR(s);
  for (int k = 0; k < ps->batch; k++) {
    memcpy(d, ps->rows + (size_t)pick[k] * ps->row_stride, ps->row_len[pick[k]]);
    d += ps->row_len[pick[k]];
  }
  memcpy(d, ps->tail, ps->tail_len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

static void raw_sample(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep) {
  (void)ctx, (void)info, (void)req;
  rep->bb = g_proto != NULL ? proto_sample(g_proto) : grpc_raw_byte_buffer_create(&g_sample_reply, 1);
}

static int raw_insert(void *ctx, rpc_call_info *info, const grpc_byte_buffer *msg, rpc_reply *rep) {
  (void)ctx, (void)info;
  if (msg != NULL && g_proto != NULL) proto_insert(g_proto, msg);
  if (msg == NULL) {
    /* Acknowledges whatever was sent without counting it (a no-op server decodes nothing): a
     * count above any stream's rows satisfies the client's received >= sent check. */
    ibrl_InsertReply r = ibrl_InsertReply_init_zero;
    r.received = 1ull << 40;
    IB_CHECK(wire_encode(&rep->bb, ibrl_InsertReply_fields, &r) == IB_OK);
  }
  return 0;
}

static void raw_info(void *ctx, rpc_call_info *info, const grpc_byte_buffer *req, rpc_reply *rep) {
  const bcfg *cfg = ctx;
  (void)info, (void)req;
  ibrl_InfoReply *r = ib_xcalloc(1, sizeof *r);
  r->obs_dim = (uint32_t)cfg->obs_dim;
  r->act_dim = (uint32_t)cfg->act_dim;
  r->tables_count = 1;
  snprintf(r->tables[0].name, sizeof r->tables[0].name, "online");
  r->tables[0].kind = 1;
  r->tables[0].size = r->tables[0].capacity = 100000;
  IB_CHECK(wire_encode(&rep->bb, ibrl_InfoReply_fields, r) == IB_OK);
  free(r);
}

/* Runs in the forked child: serves until the parent closes `ctl_fd`; with `proto`, as the
 * prototype's server (proto_srv), else as a no-op server. */
static void raw_server_main(const bcfg *cfg, int port_fd, int ctl_fd, int proto) {
  grpc_init();
  rc_batch b;
  rc_batch_init(&b, cfg->batch, cfg->obs_dim, cfg->act_dim);
  fill_batch(&b, cfg->batch, 2);
  g_sample_reply = encode_batch(&b, 0);
  rc_batch_free(&b);
  if (proto) g_proto = proto_srv_create(cfg->batch);
  /* The real paths, so the replay client can run against the no-op server too. */
  rpc_method m[3] = {
      {RAW_INSERT_PATH, RPC_CLIENT_STREAM, NULL, raw_insert, NULL},
      {RAW_SAMPLE_PATH, RPC_UNARY, raw_sample, NULL, NULL},
      {WIRE_PATH_INFO, RPC_UNARY, raw_info, NULL, (void *)cfg},
  };
  rpc_server_opts o = {"127.0.0.1", 0, cfg->server_threads, 64L * 1024 * 1024, NULL, NULL, NULL, cfg->server_pollers};
  rpc_server *srv = NULL;
  int port = -1;
  if (rpc_server_create(&srv, &o, m, 3) == IB_OK) port = rpc_server_port(srv);
  else fprintf(stderr, "bench replay: raw server: %s\n", ib_errmsg());
  IB_CHECK(write(port_fd, &port, sizeof port) == (ssize_t)sizeof port);
  close(port_fd);
  char c;
  while (read(ctl_fd, &c, 1) > 0) {
  }
  rpc_server_destroy(srv);
  proto_srv_free(g_proto);
  grpc_slice_unref(g_sample_reply);
  grpc_shutdown_blocking();
  _exit(0);
}

/* ---- the ibrl-replay child ---- */

static pid_t start_replay(const bcfg *cfg, int *port) {
  int fd[2];
  IB_CHECK(pipe(fd) == 0);
  char od[16], ad[16], th[16], po[16];
  snprintf(th, sizeof th, "%d", cfg->server_threads);
  snprintf(po, sizeof po, "%d", cfg->server_pollers > 0 ? cfg->server_pollers : cfg->server_threads);
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
          ONLINE_CAP_STR, "--demo-capacity", "1000", "--threads", th, "--pollers", po, "--max-message-mb", "64",
          (char *)NULL);
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
  int proto; /* raw kinds: with the prototype's copies (the proto variant) */
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
    IB_CHECK(rc_writer_open(&w, c, "online", atomic_fetch_add(&next_actor, 1), 0, STORE_DEDUP_WINDOW) == IB_OK);
    IB_CHECK(rc_writer_pipeline(w, 1) == IB_OK); /* a bulk loader's writer: see writer_msgs */
    int rc = IB_OK;
    while (!atomic_load(j->stop) && rc == IB_OK) rc = rc_writer_write(w, &b);
    if (rc == IB_OK) rc = rc_writer_flush(w, -1);
    if (rc != IB_OK) {
      j->err = 1;
      snprintf(j->msg, sizeof j->msg, "%s", ib_errmsg());
    }
    rc_writer_stats st;
    rc_writer_stats_get(w, &st);
    j->items = st.next_seq; /* written and flushed (the no-op server acknowledges without counting) */
    rc_writer_close(w);
  } else {
    /* As the learner samples: with the prefetching sampler by default (one request in flight
     * ahead of the batch being decoded), or one rc_sample at a time with --no-prefetch. */
    rc_sampler *sp = NULL;
    if (j->cfg->prefetch) IB_CHECK(rc_sampler_open(&sp, c, j->cfg->batch, -1) == IB_OK);
    while (!atomic_load(j->stop)) {
      int rc = sp != NULL ? rc_sampler_next(sp, &b) : rc_sample(c, &b, j->cfg->batch, -1);
      if (rc != IB_OK) {
        j->err = 1;
        snprintf(j->msg, sizeof j->msg, "%s", ib_errmsg());
        break;
      }
      j->items += (uint64_t)b.n;
    }
    rc_sampler_close(sp);
  }
  rc_batch_free(&b);
  rc_client_close(c);
  return NULL;
}

/* proto's decode: the reply copied out of gRPC's slices into a buffer of this thread, which
 * proto_copy_out_release frees when the thread's job ends. */
static __thread uint8_t *proto_out_buf;
static __thread size_t proto_out_cap;

static void proto_copy_out(grpc_byte_buffer *bb) {
  size_t len = grpc_byte_buffer_length(bb);
  if (len > proto_out_cap) {
    free(proto_out_buf);
    proto_out_buf = ib_xmalloc(len);
    proto_out_cap = len;
  }
  bb_copy(proto_out_buf, bb);
  __asm__ volatile("" : : "r"(proto_out_buf) : "memory"); /* the copy is the point: keep it */
}

static void proto_copy_out_release(void) {
  free(proto_out_buf);
  proto_out_buf = NULL;
  proto_out_cap = 0;
}

/* proto's encode: the message copied into a fresh slice, as a nanopb encode into a new buffer. */
static grpc_byte_buffer *proto_copy_in(const grpc_slice *payload) {
  grpc_slice s = grpc_slice_malloc(GRPC_SLICE_LENGTH(*payload));
  memcpy(GRPC_SLICE_START_PTR(s), GRPC_SLICE_START_PTR(*payload), GRPC_SLICE_LENGTH(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* One raw batch of ops; returns 0 on success. */
static int raw_batch(grpc_call *call, grpc_completion_queue *cq, grpc_op *ops, size_t n, void *tag) {
  IB_CHECK(grpc_call_start_batch(call, ops, n, tag, NULL) == GRPC_CALL_OK);
  grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : -1;
}

/* One raw unary Sample call: a 6-op batch as rc__unary sends, tagged by the struct itself. */
typedef struct raw_ucall {
  grpc_call *call;
  grpc_metadata_array mi, mt;
  grpc_byte_buffer *reply;
  grpc_status_code st;
  grpc_slice details;
  const char *es;
} raw_ucall;

static void raw_ucall_start(raw_ucall *u, grpc_channel *ch, grpc_completion_queue *cq, grpc_byte_buffer *req) {
  memset(u, 0, sizeof *u);
  u->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                     grpc_slice_from_static_string(RAW_SAMPLE_PATH), NULL, wire_deadline_ms(10000), NULL);
  grpc_metadata_array_init(&u->mi);
  grpc_metadata_array_init(&u->mt);
  u->st = GRPC_STATUS_UNKNOWN;
  u->details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->mi;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &u->reply;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &u->mt;
  ops[5].data.recv_status_on_client.status = &u->st;
  ops[5].data.recv_status_on_client.status_details = &u->details;
  ops[5].data.recv_status_on_client.error_string = &u->es;
  IB_CHECK(grpc_call_start_batch(u->call, ops, 6, u, NULL) == GRPC_CALL_OK);
}

/* Waits for u, drops its reply undecoded (proto: after copying it out) and releases it; returns
 * its status. */
static grpc_status_code raw_ucall_finish(raw_ucall *u, grpc_completion_queue *cq, int proto) {
  grpc_event ev = grpc_completion_queue_pluck(cq, u, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  IB_CHECK(ev.type == GRPC_OP_COMPLETE);
  grpc_status_code st = u->st;
  if (u->reply && proto) proto_copy_out(u->reply);
  if (u->reply) grpc_byte_buffer_destroy(u->reply);
  grpc_metadata_array_destroy(&u->mi);
  grpc_metadata_array_destroy(&u->mt);
  grpc_slice_unref(u->details);
  gpr_free((void *)u->es);
  grpc_call_unref(u->call);
  return st;
}

/* Raw sampling with one call in flight ahead, the pattern of rc_sampler (the default): call
 * i+1 is started before call i is waited for. */
static void raw_sample_ahead(job *j, grpc_channel *ch, grpc_completion_queue *cq, grpc_byte_buffer *req) {
  raw_ucall u[2];
  int cur = 0;
  raw_ucall_start(&u[cur], ch, cq, req);
  while (!atomic_load(j->stop) && !j->err) {
    raw_ucall_start(&u[1 - cur], ch, cq, req);
    grpc_status_code st = raw_ucall_finish(&u[cur], cq, j->proto);
    cur = 1 - cur;
    if (st != GRPC_STATUS_OK) {
      j->err = 1;
      snprintf(j->msg, sizeof j->msg, "raw call %s: %s", RAW_SAMPLE_PATH, wire_status_name(st));
    } else {
      j->items += (uint64_t)j->cfg->batch;
    }
  }
  (void)raw_ucall_finish(&u[cur], cq, j->proto); /* the one still in flight, not counted */
}

static void *job_raw(job *j) {
  grpc_init();
  wire_channel_opts co = {64L * 1024 * 1024, NULL, 0, 0};
  grpc_channel *ch = wire_channel_create(j->target, &co);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  /* Messages per raw Insert stream: as ours (writer_msgs) by default; with --raw-msgs 0 one stream
   * runs the whole measurement (grpc-core.md's InsertStream method). */
  int per_call = j->kind != 1 ? 1 : j->cfg->raw_msgs > 0 ? j->cfg->raw_msgs : INT_MAX;
  const char *path = j->kind == 1 ? RAW_INSERT_PATH : RAW_SAMPLE_PATH;
  ibrl_SampleRequest sreq = ibrl_SampleRequest_init_zero;
  sreq.batch_size = (uint32_t)j->cfg->batch;
  grpc_byte_buffer *sreq_bb = NULL;
  IB_CHECK(wire_encode(&sreq_bb, ibrl_SampleRequest_fields, &sreq) == IB_OK);
  if (j->kind == 3 && j->cfg->prefetch) raw_sample_ahead(j, ch, cq, sreq_bb);
  while (!atomic_load(j->stop) && !j->err && !(j->kind == 3 && j->cfg->prefetch)) {
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
    int ok = 1, sent = 0;
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
      sent = 0;
      for (int k = 0; k < per_call && ok && (per_call != INT_MAX || !atomic_load(j->stop)); k++) {
        grpc_byte_buffer *bb =
            j->proto ? proto_copy_in(j->payload) : grpc_raw_byte_buffer_create((grpc_slice *)j->payload, 1);
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = bb;
        ok = raw_batch(call, cq, ops, 1, &ops[0]) == 0;
        grpc_byte_buffer_destroy(bb);
        sent += ok;
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
      j->items += (uint64_t)(j->kind == 1 ? sent : 1) * (uint64_t)j->cfg->batch;
    }
    if (reply && j->kind == 3 && j->proto) proto_copy_out(reply);
    if (reply) grpc_byte_buffer_destroy(reply);
    grpc_metadata_array_destroy(&mi);
    grpc_metadata_array_destroy(&mt);
    grpc_slice_unref(details);
    gpr_free((void *)es);
    grpc_call_unref(call);
  }
  grpc_byte_buffer_destroy(sreq_bb);
  proto_copy_out_release();
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
static double median(const double *x, int n) {
  double t[MAX_ROUNDS];
  memcpy(t, x, (size_t)n * sizeof *t);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
      double tmp = t[j];
      t[j] = t[j - 1];
      t[j - 1] = tmp;
    }
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* CPU seconds (user + system) of this process, and of a child from /proc/<pid>/stat. */
static double cpu_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static double cpu_of(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long ut = 0, st = 0;
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return 0;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct phase_result {
  double rate;      /* items/s, or -1 on error */
  double client_us; /* CPU microseconds per item in this process (the client threads) */
  double server_us; /* CPU microseconds per item in the server process */
} phase_result;

/* Runs `threads` jobs of `kind` for cfg->seconds against `target` (served by process `srv`). */
static phase_result run_phase(const bcfg *cfg, int kind, int proto, int threads, const char *target,
                              const grpc_slice *payload, pid_t srv) {
  atomic_int stop = 0;
  job jobs[MAX_THREADS];
  pthread_t th[MAX_THREADS];
  double c0 = cpu_self(), s0 = cpu_of(srv);
  for (int t = 0; t < threads; t++) {
    jobs[t] = (job){cfg, kind, proto, t, target, payload, &stop, 0, 0, ""};
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
  phase_result r = {-1, 0, 0};
  if (!err && items > 0) {
    r.rate = (double)items / dt;
    r.client_us = (cpu_self() - c0) * 1e6 / (double)items;
    r.server_us = (cpu_of(srv) - s0) * 1e6 / (double)items;
  }
  return r;
}

/* The machine, for the header: ratios differ between VMs of the same size (CPU model, kernel). */
static void machine_line(void) {
  char model[128] = "unknown CPU", line[256];
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
      snprintf(model, sizeof model, "%s", colon + 2);
      model[strcspn(model, "\n")] = '\0';
      break;
    }
  }
  if (f != NULL) fclose(f);
  printf("  machine: %s, %ld online CPUs\n", model, sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- the shard's insert path in this process (--only decode) ----
 * What ibrl-replay does with one received InsertRequest of columns, without the transport, in two
 * timed phases: "decode" walks the message, checks every column's length and the floats for
 * NaN/Inf inside the copy into the insert slot's rows and builds the store items (rins_decode, the
 * shard's own decoder); "store" is store_insert_prechecked into a table of the size the bench gives
 * ibrl-replay (dedup, the record writes with streaming stores, counters). The messages are cut into the
 * slices the shard gets from gRPC (a first piece, then 64 kB slices), and 16 different ones are
 * cycled (2.5 MB, more than this CPU's 2 MB L2), so each arrives from outside the core's cache as
 * the kernel's copy leaves it. Each insert gets fresh seqs, so every row is stored and written. */

#define DEC_MSGS 16

/* Decodes InsertRequest bb into slot->items with the shard's own decoder (rsrv_insert.h); returns
 * the row count, or -1 with the refusal printed. */
static long dec_one(rins_slot *slot, const grpc_byte_buffer *bb) {
  char table[STORE_NAME_MAX];
  size_t n = 0;
  rpc_reply rep = {0};
  if (rins_decode(slot, bb, table, sizeof table, &n, &rep) != IB_OK) {
    fprintf(stderr, "ibrl-bench replay --only decode: %s\n", rep.msg);
    return -1;
  }
  return (long)n;
}

static double thread_cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int decode_bench(const bcfg *cfg) {
  grpc_init();
  rins_slot st;
  memset(&st, 0, sizeof st);
  rins_slot_init(&st, cfg->obs_dim, cfg->act_dim, 1024); /* rsrv.c's bound per message */
  store_spec sp[2];
  store_specs_default(sp, cfg->obs_dim, cfg->act_dim, 1000, ONLINE_CAP); /* as start_replay's ibrl-replay */
  store *s = NULL;
  if (store_create(&s, sp, 2, NULL) != IB_OK) {
    fprintf(stderr, "ibrl-bench replay --only decode: %s\n", ib_errmsg());
    return 1;
  }
  rc_batch b;
  rc_batch_init(&b, cfg->batch, cfg->obs_dim, cfg->act_dim);
  grpc_byte_buffer *msgs[DEC_MSGS];
  size_t len = 0;
  for (int k = 0; k < DEC_MSGS; k++) {
    fill_batch(&b, cfg->batch, 10 + (uint64_t)k);
    grpc_byte_buffer *one = rc__encode_insert_columns(&b, 0, b.n, "online");
    grpc_byte_buffer_reader rd;
    IB_CHECK(grpc_byte_buffer_reader_init(&rd, one));
    grpc_slice flat = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    grpc_byte_buffer_destroy(one);
    len = GRPC_SLICE_LENGTH(flat);
    const uint8_t *p = GRPC_SLICE_START_PTR(flat);
    grpc_slice sl[64];
    size_t ns = 0, at = 0, first = 4096 + (size_t)k * 3001 % 60000; /* a first piece, then 64 kB slices */
    for (size_t piece = IB_MIN(first, len); at < len && ns < 64; at += piece, piece = IB_MIN((size_t)65536, len - at))
      sl[ns++] = grpc_slice_from_copied_buffer((const char *)p + at, piece);
    msgs[k] = grpc_raw_byte_buffer_create(sl, ns);
    for (size_t q = 0; q < ns; q++) grpc_slice_unref(sl[q]);
    grpc_slice_unref(flat);
  }
  rc_batch_free(&b);
  printf("ibrl-bench replay --only decode: the shard's insert path in this process, %d rows of obs %d, action %d per "
         "message (%zu B, a first slice of 4-64 kB, then 64 kB slices, %d messages cycled), into a 300k-row table; "
         "medians of %d rounds of %.2f s\n",
         cfg->batch, cfg->obs_dim, cfg->act_dim, len, DEC_MSGS, cfg->rounds, cfg->seconds);
  double dec_ns[MAX_ROUNDS], sto_ns[MAX_ROUNDS];
  uint64_t seq = 0;
  int bad = 0;
  for (int r = 0; r < cfg->rounds && !bad; r++) {
    uint64_t rows = 0;
    double t_dec = 0, t_sto = 0, t0 = (double)ib_now_ns() * 1e-9;
    for (int k = 0; (double)ib_now_ns() * 1e-9 - t0 < cfg->seconds; k = (k + 1) % DEC_MSGS) {
      double c0 = thread_cpu();
      long n = dec_one(&st, msgs[k]);
      double c1 = thread_cpu();
      if (n < 0) {
        bad = 1;
        break;
      }
      for (long i = 0; i < n; i++) st.items[i].seq = seq++; /* fresh rows: all stored */
      double c2 = thread_cpu();
      store_insert_result res;
      if (store_insert_prechecked(s, "online", st.items, (size_t)n, &res) != IB_OK || res.stored != (uint32_t)n) {
        fprintf(stderr, "ibrl-bench replay --only decode: store: %s\n", ib_errmsg());
        bad = 1;
        break;
      }
      t_dec += c1 - c0;
      t_sto += thread_cpu() - c2;
      rows += (uint64_t)n;
    }
    dec_ns[r] = t_dec * 1e9 / (double)(rows ? rows : 1);
    sto_ns[r] = t_sto * 1e9 / (double)(rows ? rows : 1);
  }
  if (!bad) {
    double d = median(dec_ns, cfg->rounds), t = median(sto_ns, cfg->rounds);
    printf("CPU ns per row: decode %.1f + store %.1f = %.1f\n", d, t, d + t);
  }
  for (int k = 0; k < DEC_MSGS; k++) grpc_byte_buffer_destroy(msgs[k]);
  store_destroy(s);
  rins_slot_free(&st);
  grpc_shutdown();
  return bad;
}

/* ---- main ---- */

int bench_replay(int argc, char **argv); /* called by bench_main.c */

static void usage(FILE *f) {
  fprintf(f,
          "usage: ibrl-bench replay [--rounds R] [--seconds S] [--only OP] [--threads T] [--no-prefetch] [--batch N]\n"
          "                          [--obs-dim N] [--act-dim N] [--variant V] [--server-threads N] [--raw-msgs N]\n"
          "                          [--server-pollers N] [--replay-bin P]\n"
          "Insert and sample throughput of the replay client against an ibrl-replay child on 127.0.0.1, with\n"
          "1 and 4 client threads, next to two raw gRPC baselines for the same bytes in the same run: raw (pre-encoded\n"
          "messages, no-op handlers) and proto (raw with the copies of grpc-core.md's prototype, whose figures\n"
          "anchors.md quotes: an encode and a decode copy on each side).\n"
          "  --rounds R       rounds per configuration; the table shows medians [5]\n"
          "  --seconds S      length of each measurement (3 per round) [0.5]\n"
          "  --only OP        insert or sample only [both]; or decode: the shard's insert path (decode + store)\n"
          "                   in this process, CPU per row (no network, no children)\n"
          "  --threads T      client threads: 1 or 4 only [both]\n"
          "  --no-prefetch    sample with one rc_sample at a time instead of the prefetching rc_sampler\n"
          "  --variant V      run only full, client, raw or proto (to profile one of them; ratios then show nan) [all]\n"
          "  --batch N        transitions per message [256]\n"
          "  --obs-dim N      stacked observation size [69]\n"
          "  --act-dim N      action chunk size [7]\n"
          "  --server-threads N  worker threads of ibrl-replay (its --threads) and of the raw and proto servers alike, 1-16 [4]\n"
          "  --server-pollers N  of those, the most taking calls at once (ibrl-replay's --pollers; one per two calls\n"
          "                   in progress), all servers alike, 1..server threads [server threads]\n"
          "  --raw-msgs N     insert/raw and proto: messages per stream before it waits for the reply, 1-100000; 0 = one\n"
          "                   stream per measurement, as grpc-core.md measured (anchors.md's raw figures) [0]\n"
          "  --replay-bin P   the ibrl-replay binary [next to ibrl-bench]\n");
}

int bench_replay(int argc, char **argv) {
  bcfg cfg = {69, 7, 256, 5, -1, 0, 1, 15, 0.5, NULL, 4, 0, 0};
  static char default_bin[PATH_MAX];
  static const struct option lo[] = {{"seconds", required_argument, NULL, 's'}, {"rounds", required_argument, NULL, 'n'},
                                     {"only", required_argument, NULL, 'y'},
                                     {"threads", required_argument, NULL, 't'}, {"no-prefetch", no_argument, NULL, 'p'},
                                     {"variant", required_argument, NULL, 'v'},
                                     {"batch", required_argument, NULL, 'b'},
                                     {"obs-dim", required_argument, NULL, 'o'}, {"act-dim", required_argument, NULL, 'a'},
                                     {"replay-bin", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
                                     {"server-threads", required_argument, NULL, 'w'},
                                     {"raw-msgs", required_argument, NULL, 'm'},
                                     {"server-pollers", required_argument, NULL, 'P'},
                                     {NULL, 0, NULL, 0}};
  optind = 1;
  opterr = 0;
  int ch, li = 0;
  while ((ch = getopt_long(argc, argv, ":", lo, &li)) != -1) {
    char *end = NULL;
    int bad = 0;
    switch (ch) {
      case 's': cfg.seconds = strtod(optarg, &end); bad = *end || !(cfg.seconds >= 0.1 && cfg.seconds <= 600); break;
      case 'n': cfg.rounds = (int)strtol(optarg, &end, 10); bad = *end || cfg.rounds < 1 || cfg.rounds > MAX_ROUNDS; break;
      case 'b': cfg.batch = (int)strtol(optarg, &end, 10); bad = *end || cfg.batch < 1 || cfg.batch > 1024; break;
      case 'o': cfg.obs_dim = (int)strtol(optarg, &end, 10); bad = *end || cfg.obs_dim < 1 || cfg.obs_dim > 512; break;
      case 'a': cfg.act_dim = (int)strtol(optarg, &end, 10); bad = *end || cfg.act_dim < 1 || cfg.act_dim > 128; break;
      case 'r': cfg.replay_bin = optarg; break;
      case 't': cfg.threads = (int)strtol(optarg, &end, 10); bad = *end || (cfg.threads != 1 && cfg.threads != 4); break;
      case 'p': cfg.prefetch = 0; break;
      case 'w':
        cfg.server_threads = (int)strtol(optarg, &end, 10);
        bad = *end || cfg.server_threads < 1 || cfg.server_threads > 16;
        break;
      case 'P':
        cfg.server_pollers = (int)strtol(optarg, &end, 10);
        bad = *end || cfg.server_pollers < 1 || cfg.server_pollers > 16;
        break;
      case 'm': cfg.raw_msgs = (int)strtol(optarg, &end, 10); bad = *end || cfg.raw_msgs < 0 || cfg.raw_msgs > 100000; break;
      case 'v':
        cfg.variants = !strcmp(optarg, "full")     ? 1
                       : !strcmp(optarg, "client") ? 2
                       : !strcmp(optarg, "raw")    ? 4
                       : !strcmp(optarg, "proto")  ? 8
                       : !strcmp(optarg, "all")    ? 15
                                                   : 0;
        bad = cfg.variants == 0;
        break;
      case 'y':
        cfg.only = !strcmp(optarg, "insert") ? 0 : !strcmp(optarg, "sample") ? 1 : !strcmp(optarg, "decode") ? 2 : -2;
        bad = cfg.only == -2;
        break;
      case 'h': usage(stdout); return 0;
      default: {
        char why[256];
        fprintf(stderr, "ibrl-bench replay: %s (HINT: ibrl-bench replay --help lists the flags)\n",
                cli_bad_option_msg(why, sizeof why, ch, argv[optind - 1], lo));
        return 2;
      }
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
  if (cfg.server_pollers > cfg.server_threads) { /* 0 (the default) = as many as server threads */
    fprintf(stderr, "ibrl-bench replay: --server-pollers %d exceeds --server-threads %d (HINT: at most one taker "
            "per thread)\n", cfg.server_pollers, cfg.server_threads);
    return 2;
  }
  if (cfg.only == 2) return decode_bench(&cfg);
  if (cfg.replay_bin == NULL) {
    ssize_t n = readlink("/proc/self/exe", default_bin, sizeof default_bin - 16);
    if (n <= 0) {
      fprintf(stderr, "ibrl-bench replay: cannot find my own path (HINT: pass --replay-bin)\n");
      return 2;
    }
    default_bin[n] = '\0';
    char *slash = strrchr(default_bin, '/');
    snprintf(slash + 1, sizeof default_bin - (size_t)(slash + 1 - default_bin), "ibrl-replay");
    cfg.replay_bin = default_bin;
  }
  if (access(cfg.replay_bin, X_OK) != 0) {
    fprintf(stderr, "ibrl-bench replay: '%s' is not an executable (HINT: build ibrl-replay or pass --replay-bin)\n",
            cfg.replay_bin);
    return 2;
  }
  /* ibrl-replay keeps freed message buffers in its heap (mallopt in replay_main.c); give the
   * raw server (forked below, so it inherits this) and the client threads the same allocator
   * settings, so the ratios compare our code with the transport and not two malloc policies. */
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  /* Children first: the raw and proto servers are forked before gRPC starts in this process. Both
   * stop when the control pipe closes (cfd[1], held by this process only). */
  int cfd[2];
  IB_CHECK(pipe(cfd) == 0);
  pid_t raw_pid = -1, proto_pid = -1;
  int raw_port = -1, proto_port = -1;
  for (int proto = 0; proto < 2; proto++) {
    int pfd[2];
    IB_CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    IB_CHECK(pid >= 0);
    if (pid == 0) {
      close(pfd[0]);
      close(cfd[1]);
      raw_server_main(&cfg, pfd[1], cfd[0], proto);
    }
    close(pfd[1]);
    int port = -1;
    if (read(pfd[0], &port, sizeof port) != (ssize_t)sizeof port) port = -1;
    close(pfd[0]);
    *(proto ? &proto_pid : &raw_pid) = pid;
    *(proto ? &proto_port : &raw_port) = port;
  }
  close(cfd[0]);
  int replay_port = -1;
  pid_t replay_pid = start_replay(&cfg, &replay_port);
  int code = 0;
  if (raw_port <= 0 || proto_port <= 0 || replay_port <= 0) {
    fprintf(stderr, "bench replay: a server did not start (raw port %d, proto port %d, ibrl-replay port %d)\n", raw_port,
            proto_port, replay_port);
    code = 1;
  }
  if (code == 0) {
    grpc_init();
    char raw_target[64], proto_target[64], replay_target[64];
    snprintf(raw_target, sizeof raw_target, "127.0.0.1:%d", raw_port);
    snprintf(proto_target, sizeof proto_target, "127.0.0.1:%d", proto_port);
    snprintf(replay_target, sizeof replay_target, "127.0.0.1:%d", replay_port);
    rc_batch b;
    rc_batch_init(&b, cfg.batch, cfg.obs_dim, cfg.act_dim);
    fill_batch(&b, cfg.batch, 1);
    grpc_slice ins = encode_batch(&b, 1);
    grpc_slice smp = encode_batch(&b, 0);
    double item_b = (double)GRPC_SLICE_LENGTH(ins) / cfg.batch;
    /* What ibrl's own client and server put on the wire instead: the same rows as columns. */
    grpc_byte_buffer *cins = rc__encode_insert_columns(&b, 0, b.n, "online");
    size_t cins_len = grpc_byte_buffer_length(cins);
    grpc_byte_buffer_destroy(cins);
    size_t csmp_len = ic_cols_len(IC_REPLY_COLUMNS, (size_t)cfg.batch, cfg.obs_dim, cfg.act_dim) +
                      ic_varint_field_len(IC_REPLY_N_DEMO + 1, (uint64_t)cfg.batch) + 2 * 2 +
                      ic_varint_field_len(IC_REPLY_N_DEMO + 3, ONLINE_CAP); /* n_demo 0, demo_size 0: 2 B each */
    rc_batch_free(&b);
    printf("ibrl-bench replay: obs %d, action %d, batch %d, %.0f B per encoded transition (InsertRequest %zu B, "
           "SampleReply %zu B); medians of %d rounds of %.2f s per variant\n"
           "  ibrl's client and shard send the rows as columns: InsertRequest %zu B, SampleReply ~%zu B "
           "(MB/s below count the per-item bytes for every variant)\n",
           cfg.obs_dim, cfg.act_dim, cfg.batch, item_b, GRPC_SLICE_LENGTH(ins), GRPC_SLICE_LENGTH(smp), cfg.rounds,
           cfg.seconds, cins_len, csmp_len);
    char raw_msgs_text[96];
    if (cfg.raw_msgs > 0)
      snprintf(raw_msgs_text, sizeof raw_msgs_text, "wait for the reply every %d messages (--raw-msgs)", cfg.raw_msgs);
    else
      snprintf(raw_msgs_text, sizeof raw_msgs_text, "send on one stream per measurement");
    printf("  full = replay client -> ibrl-replay (decode, validate, store, sample, encode); its online table of "
           ONLINE_CAP_STR " rows is filled before the first phase\n"
           "  client = replay client -> no-op server (the client library and transport only)\n"
           "  raw = bare gRPC core, pre-encoded messages -> no-op server\n"
           "  proto = raw with grpc-core.md's prototype's copies (anchors.md's raw figures): the client copies each message "
           "into a fresh slice and each reply out of gRPC's slices, the server each message into a ring of %d and each "
           "reply's rows from a ring of %d\n"
           "  insert: full/client send streams of %d messages (the writer's %d rows), each half-closed while the next goes "
           "out; raw and proto %s\n"
           "  servers: %d worker threads each (ibrl-replay --threads; --server-threads), one per two calls in progress "
           "taking calls, at most %d (--pollers; --server-pollers)\n"
           "  sample: %s\n",
           PROTO_RING, PROTO_RING, writer_msgs(&cfg), writer_msgs(&cfg) * cfg.batch, raw_msgs_text, cfg.server_threads,
           cfg.server_pollers > 0 ? cfg.server_pollers : cfg.server_threads,
           cfg.prefetch ? "full/client use rc_sampler; raw and proto likewise keep one call in flight ahead of the one "
                          "they wait for"
                        : "full/client use rc_sample, raw and proto one call at a time (--no-prefetch)");
    machine_line();
    printf("%-7s %-7s %10s %9s %10s %9s %10s %9s %8s %8s %10s %9s %10s\n", "op", "threads", "full/s", "full MB/s",
           "client/s", "cl. MB/s", "raw/s", "raw MB/s", "full/raw", "cl./raw", "proto/s", "pr. MB/s", "full/proto");
    /* Prefill the whole online table, so that sampling draws from a full ring with --only sample
     * too (as after the insert phase). */
    {
      rc_opts po = {0};
      po.shards = replay_target;
      po.max_message_bytes = 64L * 1024 * 1024;
      rc_client *pc = NULL;
      rc_writer *pw = NULL;
      rc_batch pb;
      rc_batch_init(&pb, cfg.batch, cfg.obs_dim, cfg.act_dim);
      fill_batch(&pb, cfg.batch, 3);
      int rc = rc_client_open(&pc, &po);
      if (rc == IB_OK) rc = rc_writer_open(&pw, pc, "online", 999999, 0, 0);
      int msgs = (ONLINE_CAP + cfg.batch - 1) / cfg.batch;
      for (int k = 0; k < msgs && rc == IB_OK; k++) rc = rc_writer_write(pw, &pb);
      if (rc == IB_OK) rc = rc_writer_close(pw);
      else rc_writer_close(pw);
      rc_shard_info si;
      if (rc == IB_OK) rc = rc_info_get(pc, 0, &si);
      for (int t = 0; rc == IB_OK && t < si.n_tables; t++)
        if (si.tables[t].kind == 1)
          printf("  prefill: the shard's online table holds %llu of %llu rows\n",
                 (unsigned long long)si.tables[t].size, (unsigned long long)si.tables[t].capacity);
      if (rc != IB_OK) {
        fprintf(stderr, "bench replay: prefill: %s\n", ib_errmsg());
        code = 1;
      }
      rc_client_close(pc);
      rc_batch_free(&pb);
    }
    static const char *names[] = {"insert", "sample"};
    const int thr[] = {1, 4};
    char cpu_lines[4][200];
    int n_cpu = 0;
    for (int op = 0; op < 2 && code == 0; op++) {
      if (cfg.only >= 0 && cfg.only != op) continue;
      for (int ti = 0; ti < 2 && code == 0; ti++) {
        if (cfg.threads != 0 && cfg.threads != thr[ti]) continue;
        fprintf(stderr, "  running %s with %d thread(s): %d rounds ...\n", names[op], thr[ti], cfg.rounds);
        /* Rounds interleave the four variants (in a rotating order), so a change in the
         * machine's load hits all of them alike; the table shows medians over the rounds and
         * the medians of the per-round ratios. Variants: 0 full, 1 client, 2 raw, 3 proto. */
        double v[NVARIANTS][MAX_ROUNDS], cu[NVARIANTS][MAX_ROUNDS], su[NVARIANTS][MAX_ROUNDS];
        double rf[MAX_ROUNDS], rc_[MAX_ROUNDS], rp[MAX_ROUNDS];
        const char *target[NVARIANTS] = {replay_target, raw_target, raw_target, proto_target};
        const pid_t pid[NVARIANTS] = {replay_pid, raw_pid, raw_pid, proto_pid};
        for (int r = 0; r < cfg.rounds && code == 0; r++) {
          for (int k = 0; k < NVARIANTS && code == 0; k++) {
            int var = (k + r) % NVARIANTS;
            if (!(cfg.variants & (1 << var))) {
              v[var][r] = cu[var][r] = su[var][r] = NAN;
              continue;
            }
            int kind = var >= 2 ? (op == 0 ? 1 : 3) : (op == 0 ? 0 : 2);
            phase_result pr = run_phase(&cfg, kind, var == 3, thr[ti], target[var], op == 0 ? &ins : NULL, pid[var]);
            v[var][r] = pr.rate;
            cu[var][r] = pr.client_us;
            su[var][r] = pr.server_us;
            if (pr.rate < 0) code = 1;
          }
          rf[r] = v[0][r] / v[2][r];
          rc_[r] = v[1][r] / v[2][r];
          rp[r] = v[0][r] / v[3][r];
        }
        if (code != 0) break;
        double full = median(v[0], cfg.rounds), cl = median(v[1], cfg.rounds), raw = median(v[2], cfg.rounds);
        double pro = median(v[3], cfg.rounds);
        printf("%-7s %-7d %10.0f %9.1f %10.0f %9.1f %10.0f %9.1f %7.0f%% %7.0f%% %10.0f %9.1f %9.0f%%\n", names[op],
               thr[ti], full, full * item_b / 1e6, cl, cl * item_b / 1e6, raw, raw * item_b / 1e6,
               100.0 * median(rf, cfg.rounds), 100.0 * median(rc_, cfg.rounds), pro, pro * item_b / 1e6,
               100.0 * median(rp, cfg.rounds));
        /* CPU per transition of both processes together, raw (proto) over full: what the
         * throughput ratio would be if the machine's CPU were the only limit (it does not depend
         * on the load). */
        double eff[MAX_ROUNDS], effp[MAX_ROUNDS];
        for (int r = 0; r < cfg.rounds; r++) {
          eff[r] = (cu[2][r] + su[2][r]) / (cu[0][r] + su[0][r]);
          effp[r] = (cu[3][r] + su[3][r]) / (cu[0][r] + su[0][r]);
        }
        snprintf(cpu_lines[n_cpu++], sizeof cpu_lines[0],
                 "%-7s %-7d %8.2f / %-8.2f %8.2f / %-8.2f %8.2f / %-8.2f %8.0f%% %8.2f / %-8.2f %8.0f%%\n", names[op],
                 thr[ti], median(cu[0], cfg.rounds), median(su[0], cfg.rounds), median(cu[1], cfg.rounds),
                 median(su[1], cfg.rounds), median(cu[2], cfg.rounds), median(su[2], cfg.rounds),
                 100.0 * median(eff, cfg.rounds), median(cu[3], cfg.rounds), median(su[3], cfg.rounds),
                 100.0 * median(effp, cfg.rounds));
        fflush(stdout);
      }
    }
    if (code == 0) {
      /* CPU time per item does not depend on how busy the machine is, unlike the rates. */
      printf("\nCPU microseconds per transition, client process / server process (medians):\n");
      printf("%-7s %-7s %19s %19s %19s %9s %19s %9s\n", "op", "threads", "full", "client", "raw", "raw/full", "proto",
             "pr./full");
      for (int k = 0; k < n_cpu; k++) fputs(cpu_lines[k], stdout);
    }
    grpc_slice_unref(ins);
    grpc_slice_unref(smp);
    grpc_shutdown_blocking();
  }
  close(cfd[1]); /* the raw and proto children stop when their control pipe closes */
  if (replay_pid > 0) kill(replay_pid, SIGTERM);
  int st;
  waitpid(raw_pid, &st, 0);
  waitpid(proto_pid, &st, 0);
  if (replay_pid > 0) waitpid(replay_pid, &st, 0);
  return code;
}
