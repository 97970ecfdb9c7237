/* agent_io.c: whole-agent checkpoints (agent_save / agent_load).
 *
 * Format (little-endian host floats; version 1):
 *   "IBAG", u32 version, u32 n_dims, i32 dims[n_dims]   (method, backbone, shapes: see dims_of)
 *   blocks: u32 tag, u64 n_floats, float data[n_floats]  (a fixed list, see blocks_of)
 *   i64 actor adam_t, i64 critic adam_t, i64 alpha_t, i32 has_il,
 *   u64 rng states (6 streams x 4 words), the agent_metrics struct bytes, u32 CRC-32 of all
 *   bytes before it.
 * Save writes "<path>.tmp", fsyncs and renames, so readers never see a half-written file.
 * Load is two passes over the file: the first checks the header, every block's tag and size
 * against THIS agent, that every float is finite, and the CRC, without touching the agent; only
 * then the second pass copies the data in. So a failed load changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_impl.h"
#include "ib.h"

#define IO_MAGIC "IBAG"
#define IO_VERSION 1u
#define IO_NDIMS 14
#define IO_NBLOCKS 11
#define IO_CHUNK 65536

typedef struct io_block {
  float *p;
  size_t n;
  const char *name;
} io_block;

static void dims_of(const agent *a, int32_t d[IO_NDIMS]) {
  const agent_config *c = &a->cfg;
  int32_t v[IO_NDIMS] = {(int32_t)c->method, (int32_t)c->backbone, c->obs_dim, c->act_dim,
                         c->actor_layers, c->actor_hidden, c->critic_layers, c->critic_hidden,
                         c->n_critics, c->critic_layernorm, (int32_t)c->il.kind, c->il.n_layers,
                         c->il.hidden, c->il.latent};
  memcpy(d, v, sizeof v);
}
static const char *const dim_names[IO_NDIMS] = {
    "method", "backbone", "obs_dim", "act_dim", "actor_layers", "actor_hidden", "critic_layers",
    "critic_hidden", "n_critics", "critic_layernorm", "il.kind", "il.n_layers", "il.hidden", "il.latent"};

/* The temperature block is 3 contiguous floats of the struct: log_alpha, (dlog_alpha skipped).
 * To keep it simple it is staged through a small array by the callers. */
static void blocks_of(agent *a, io_block b[IO_NBLOCKS], float *temp3) {
  io_block v[IO_NBLOCKS] = {
      {a->actor.params, a->actor.n_params, "actor params"},
      {a->actor.adam_m, a->actor.adam_m ? a->actor.n_params : 0, "actor adam m"},
      {a->actor.adam_v, a->actor.adam_v ? a->actor.n_params : 0, "actor adam v"},
      {a->actor_target.params, a->actor_target.n_params, "actor target"},
      {a->critic.params, a->critic.n_params, "critic params"},
      {a->critic.adam_m, a->critic.adam_m ? a->critic.n_params : 0, "critic adam m"},
      {a->critic.adam_v, a->critic.adam_v ? a->critic.n_params : 0, "critic adam v"},
      {a->critic_target.params, a->critic_target.n_params, "critic target"},
      {a->il.net.params, a->il.net.n_params, "IL net"},
      {a->il.enc.params, a->il.enc.n_params, "IL encoder"},
      {temp3, 3, "temperature"},
  };
  memcpy(b, v, sizeof v);
}

/* ---- save ---- */

typedef struct wctx {
  FILE *f;
  uint32_t crc;
  int err;
} wctx;

static void wr(wctx *w, const void *p, size_t n) {
  if (w->err || n == 0) return;
  if (fwrite(p, 1, n, w->f) != n) w->err = 1;
  w->crc = ib_crc32(w->crc, p, n);
}

int agent_save(const agent *ca, const char *path) {
  IB_CHECK(ca && path);
  agent *a = (agent *)ca; /* blocks_of hands out non-const views; save only reads them */
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return ib_fail(IB_EINVAL, "agent save: path '%s' is too long", path);
  wctx w = {fopen(tmp, "wb"), 0, 0};
  if (!w.f)
    return ib_fail(IB_EIO, "agent save: cannot create '%s' (HINT: does the directory exist and is it writable?)", tmp);
  uint32_t ver = IO_VERSION, nd = IO_NDIMS;
  int32_t dims[IO_NDIMS];
  dims_of(a, dims);
  wr(&w, IO_MAGIC, 4);
  wr(&w, &ver, 4);
  wr(&w, &nd, 4);
  wr(&w, dims, sizeof dims);
  float temp3[3] = {a->log_alpha[0], a->alpha_m[0], a->alpha_v[0]};
  io_block bl[IO_NBLOCKS];
  blocks_of(a, bl, temp3);
  for (uint32_t t = 0; t < IO_NBLOCKS; t++) {
    uint64_t n = bl[t].p ? bl[t].n : 0;
    wr(&w, &t, 4);
    wr(&w, &n, 8);
    wr(&w, bl[t].p, n * sizeof(float));
  }
  int64_t ts[3] = {a->actor.adam_t, a->critic.adam_t, a->alpha_t};
  int32_t has_il = a->has_il;
  wr(&w, ts, sizeof ts);
  wr(&w, &has_il, 4);
  const rng *rs[6] = {&a->r_dropout, &a->r_target_noise, &a->r_act_noise, &a->r_heads, &a->r_select, &a->r_sac};
  for (int i = 0; i < 6; i++) wr(&w, rs[i]->s, sizeof rs[i]->s);
  wr(&w, &a->metrics, sizeof a->metrics);
  uint32_t crc = w.crc;
  wr(&w, &crc, 4);
  int err = w.err || fflush(w.f) != 0 || fsync(fileno(w.f)) != 0;
  err |= fclose(w.f) != 0;
  if (err) {
    remove(tmp);
    return ib_fail(IB_EIO, "agent save: writing '%s' failed (HINT: is the disk full?)", tmp);
  }
  if (rename(tmp, path) != 0) {
    remove(tmp);
    return ib_fail(IB_EIO, "agent save: cannot rename '%s' to '%s'", tmp, path);
  }
  return IB_OK;
}

/* ---- load ---- */

typedef struct rctx {
  FILE *f;
  uint32_t crc;
  int short_read;
  const char *path;
} rctx;

static int rd(rctx *r, void *p, size_t n) {
  if (n == 0) return 1;
  if (fread(p, 1, n, r->f) != n) {
    r->short_read = 1;
    return 0;
  }
  r->crc = ib_crc32(r->crc, p, n);
  return 1;
}

/* One pass. apply 0: validate only (scratch used for block data); apply 1: copy into the agent. */
static int load_pass(agent *a, rctx *r, int apply, float *scratch) {
  char magic[4];
  uint32_t ver = 0, nd = 0;
  if (!rd(r, magic, 4) || memcmp(magic, IO_MAGIC, 4) != 0)
    return ib_fail(IB_EPROTO, "agent load: '%s' is not an agent checkpoint (bad magic) (HINT: pass the "
                   "agent-<n>.ckpt file, not an IL or nn file)", r->path);
  if (!rd(r, &ver, 4) || ver != IO_VERSION)
    return ib_fail(IB_EPROTO, "agent load: '%s' has version %u, this build reads %u", r->path, ver, IO_VERSION);
  if (!rd(r, &nd, 4) || nd != IO_NDIMS)
    return ib_fail(IB_EPROTO, "agent load: '%s' has %u dims, expected %d", r->path, nd, IO_NDIMS);
  int32_t fd[IO_NDIMS], md[IO_NDIMS];
  if (!rd(r, fd, sizeof fd)) goto truncated;
  dims_of(a, md);
  for (int i = 0; i < IO_NDIMS; i++)
    if (fd[i] != md[i])
      return ib_fail(IB_EMISMATCH, "agent load: '%s' has %s = %d, this agent has %d (HINT: build the agent "
                     "with the run's config.json)", r->path, dim_names[i], fd[i], md[i]);
  float temp3[3] = {a->log_alpha[0], a->alpha_m[0], a->alpha_v[0]};
  io_block bl[IO_NBLOCKS];
  blocks_of(a, bl, temp3);
  for (uint32_t t = 0; t < IO_NBLOCKS; t++) {
    uint32_t tag = 0;
    uint64_t n = 0;
    if (!rd(r, &tag, 4) || !rd(r, &n, 8)) goto truncated;
    uint64_t want = bl[t].p ? bl[t].n : 0;
    if (tag != t || n != want)
      return ib_fail(IB_EMISMATCH, "agent load: '%s' block %u (%s) has %llu floats, this agent needs %llu "
                     "(HINT: a learner checkpoint loads into a learner agent with the same shapes)", r->path,
                     t, bl[t].name, (unsigned long long)n, (unsigned long long)want);
    for (uint64_t off = 0; off < n; off += IO_CHUNK) {
      size_t m = (size_t)(n - off < IO_CHUNK ? n - off : IO_CHUNK);
      float *dst = apply ? bl[t].p + off : scratch;
      if (!rd(r, dst, m * sizeof(float))) goto truncated;
      long bad = ib_first_nonfinite(dst, m);
      if (bad >= 0)
        return ib_fail(IB_ENONFINITE, "agent load: '%s' block %s float %llu is not finite", r->path,
                       bl[t].name, (unsigned long long)(off + (uint64_t)bad));
    }
  }
  int64_t ts[3];
  int32_t has_il;
  uint64_t rs[6][4];
  agent_metrics m;
  uint32_t crc_file = 0;
  if (!rd(r, ts, sizeof ts) || !rd(r, &has_il, 4) || !rd(r, rs, sizeof rs) || !rd(r, &m, sizeof m))
    goto truncated;
  uint32_t crc = r->crc;
  if (fread(&crc_file, 1, 4, r->f) != 4) goto truncated;
  if (crc != crc_file)
    return ib_fail(IB_ECHECKSUM, "agent load: '%s' CRC mismatch (file %08x, content %08x) (HINT: the file is "
                   "corrupt; use an older checkpoint)", r->path, crc_file, crc);
  if (fgetc(r->f) != EOF)
    return ib_fail(IB_EPROTO, "agent load: '%s' has bytes after the CRC", r->path);
  if (apply) {
    a->log_alpha[0] = temp3[0];
    a->alpha_m[0] = temp3[1];
    a->alpha_v[0] = temp3[2];
    a->actor.adam_t = ts[0];
    a->critic.adam_t = ts[1];
    a->alpha_t = ts[2];
    a->has_il = has_il;
    rng *dst[6] = {&a->r_dropout, &a->r_target_noise, &a->r_act_noise, &a->r_heads, &a->r_select, &a->r_sac};
    for (int i = 0; i < 6; i++) memcpy(dst[i]->s, rs[i], sizeof rs[i]);
    a->metrics = m;
  }
  return IB_OK;
truncated:
  return ib_fail(IB_EPROTO, "agent load: '%s' is truncated (HINT: the save was interrupted; use an older "
                 "checkpoint)", r->path);
}

int agent_load(agent *a, const char *path) {
  IB_CHECK(a && path);
  FILE *f = fopen(path, "rb");
  if (!f) return ib_fail(IB_EIO, "agent load: cannot open '%s' (HINT: check the run directory)", path);
  float *scratch = ib_xmalloc(IO_CHUNK * sizeof(float));
  rctx r = {f, 0, 0, path};
  int rc = load_pass(a, &r, 0, scratch);
  if (rc == IB_OK) {
    rewind(f);
    rctx r2 = {f, 0, 0, path};
    rc = load_pass(a, &r2, 1, scratch);
  }
  free(scratch);
  fclose(f);
  return rc;
}
