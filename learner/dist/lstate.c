/* lstate.c: learner.state read/write (format in lstate.h).
 *
 * Design. The file is assembled in one buffer and written with one fwrite, then renamed over
 * the old one; the CRC is computed over the same buffer, so reading back can check it before
 * trusting any count in it. */
#include "lstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

#define LSTATE_MAGIC "IBLS"
#define LSTATE_FORMAT 1u
#define LSTATE_FIXED (4 + 4 + 4 + 8 * 4 + 8 + 64)
#define LSTATE_MAX_RANKS 65536

void lstate_streams_get(const agent *a, rng *out) {
  out[0] = a->r_dropout;
  out[1] = a->r_target_noise;
  out[2] = a->r_act_noise;
  out[3] = a->r_select;
  out[4] = a->r_sac;
}

void lstate_streams_set(agent *a, const rng *in) {
  a->r_dropout = in[0];
  a->r_target_noise = in[1];
  a->r_act_noise = in[2];
  a->r_select = in[3];
  a->r_sac = in[4];
}

static size_t file_bytes(int ranks) { return LSTATE_FIXED + (size_t)ranks * LSTATE_STREAMS * sizeof(rng) + 4; }

int lstate_save(const char *path, const lstate *s) {
  IB_CHECK(path && s && s->ranks > 0 && s->streams);
  size_t n = file_bytes(s->ranks);
  uint8_t *buf = ib_xcalloc(1, n), *p = buf;
  uint32_t u32;
  memcpy(p, LSTATE_MAGIC, 4), p += 4;
  u32 = LSTATE_FORMAT, memcpy(p, &u32, 4), p += 4;
  u32 = (uint32_t)s->ranks, memcpy(p, &u32, 4), p += 4;
  memcpy(p, &s->updates, 8), p += 8;
  memcpy(p, &s->actor_updates, 8), p += 8;
  memcpy(p, &s->weight_version, 8), p += 8;
  memcpy(p, &s->samples, 8), p += 8;
  memcpy(p, &s->wall_s, 8), p += 8;
  memcpy(p, s->agent_file, 64), p += 64;
  memcpy(p, s->streams, (size_t)s->ranks * LSTATE_STREAMS * sizeof(rng)), p += (size_t)s->ranks * LSTATE_STREAMS * sizeof(rng);
  u32 = ib_crc32(0, buf, (size_t)(p - buf));
  memcpy(p, &u32, 4);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    free(buf);
    return ib_fail(IB_EIO, "cannot write %s: %s (HINT: is the run directory writable?)", tmp, strerror(errno));
  }
  int ok = fwrite(buf, 1, n, f) == n;
  ok = (fclose(f) == 0) && ok;
  free(buf);
  if (!ok) return ib_fail(IB_EIO, "writing %s failed (HINT: is the disk full?)", tmp);
  if (rename(tmp, path) != 0) return ib_fail(IB_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  return IB_OK;
}

int lstate_load(lstate *s, const char *path) {
  IB_CHECK(s && path);
  memset(s, 0, sizeof *s);
  FILE *f = fopen(path, "rb");
  if (!f) return ib_fail(IB_EIO, "cannot open %s: %s (HINT: --resume needs a run directory written by ibrl-learner)", path, strerror(errno));
  uint8_t head[12];
  if (fread(head, 1, 12, f) != 12 || memcmp(head, LSTATE_MAGIC, 4) != 0) {
    fclose(f);
    return ib_fail(IB_EPROTO, "%s is not a learner state file (bad magic or truncated)", path);
  }
  uint32_t format, ranks;
  memcpy(&format, head + 4, 4);
  memcpy(&ranks, head + 8, 4);
  if (format != LSTATE_FORMAT || ranks == 0 || ranks > LSTATE_MAX_RANKS) {
    fclose(f);
    return ib_fail(IB_EPROTO, "%s: format %u with %u ranks, this build reads format %u (HINT: resume with the same release)",
                   path, (unsigned)format, (unsigned)ranks, LSTATE_FORMAT);
  }
  size_t n = file_bytes((int)ranks);
  uint8_t *buf = ib_xmalloc(n);
  memcpy(buf, head, 12);
  size_t got = fread(buf + 12, 1, n - 12, f);
  int extra = fgetc(f) != EOF;
  fclose(f);
  if (got != n - 12 || extra) {
    free(buf);
    return ib_fail(IB_EPROTO, "%s: %s (HINT: the file was cut or overwritten; resume from a complete run directory)", path,
                   extra ? "longer than its header says" : "truncated");
  }
  uint32_t crc;
  memcpy(&crc, buf + n - 4, 4);
  if (ib_crc32(0, buf, n - 4) != crc) {
    free(buf);
    return ib_fail(IB_ECHECKSUM, "%s: CRC mismatch (HINT: the file is corrupted)", path);
  }
  const uint8_t *p = buf + 12;
  s->ranks = (int)ranks;
  memcpy(&s->updates, p, 8), p += 8;
  memcpy(&s->actor_updates, p, 8), p += 8;
  memcpy(&s->weight_version, p, 8), p += 8;
  memcpy(&s->samples, p, 8), p += 8;
  memcpy(&s->wall_s, p, 8), p += 8;
  memcpy(s->agent_file, p, 64), p += 64;
  s->agent_file[63] = 0;
  s->streams = ib_xmalloc((size_t)ranks * LSTATE_STREAMS * sizeof(rng));
  memcpy(s->streams, p, (size_t)ranks * LSTATE_STREAMS * sizeof(rng));
  free(buf);
  return IB_OK;
}

void lstate_free(lstate *s) {
  if (!s) return;
  free(s->streams);
  memset(s, 0, sizeof *s);
}

int lstate_cfg_save(const char *path, const void *cfg, size_t n) {
  IB_CHECK(path && cfg && n > 0 && n < UINT32_MAX);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return ib_fail(IB_EIO, "cannot write %s: %s (HINT: is the run directory writable?)", tmp, strerror(errno));
  uint32_t len = (uint32_t)n, crc = ib_crc32(0, cfg, n);
  int ok = fwrite("IBLC", 1, 4, f) == 4 && fwrite(&len, 4, 1, f) == 1 && fwrite(cfg, 1, n, f) == n &&
           fwrite(&crc, 4, 1, f) == 1;
  ok = (fclose(f) == 0) && ok;
  if (!ok) return ib_fail(IB_EIO, "writing %s failed (HINT: is the disk full?)", tmp);
  if (rename(tmp, path) != 0) return ib_fail(IB_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  return IB_OK;
}

int lstate_cfg_load(const char *path, void *cfg, size_t n) {
  IB_CHECK(path && cfg && n > 0);
  FILE *f = fopen(path, "rb");
  if (!f) return ib_fail(IB_EIO, "cannot open %s: %s (HINT: --resume needs a run directory written by ibrl-learner)", path, strerror(errno));
  char magic[4];
  uint32_t len = 0, crc = 0;
  int rc = IB_OK;
  if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "IBLC", 4) != 0 || fread(&len, 4, 1, f) != 1) {
    rc = ib_fail(IB_EPROTO, "%s is not a learner config file (bad magic or truncated)", path);
  } else if (len != n) {
    rc = ib_fail(IB_EMISMATCH, "%s holds a %u-byte config, this build's is %zu bytes (HINT: resume with the build that started the run)",
                 path, (unsigned)len, n);
  } else {
    uint8_t *buf = ib_xmalloc(n);
    if (fread(buf, 1, n, f) != n || fread(&crc, 4, 1, f) != 1) rc = ib_fail(IB_EPROTO, "%s is truncated", path);
    else if (ib_crc32(0, buf, n) != crc) rc = ib_fail(IB_ECHECKSUM, "%s: CRC mismatch (HINT: the file is corrupted)", path);
    else memcpy(cfg, buf, n);
    free(buf);
  }
  fclose(f);
  return rc;
}
