/* ilfile.c: IL checkpoint = il_save's files + a "key value" meta file.
 *
 * Design. il_load needs a policy of the same shape, so the shape must be known before loading;
 * the meta file carries it in plain text (readable with cat, diffable). Floats are printed with
 * %.9g so they round-trip exactly. */
#include "ilfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

int ilfile_save(const il_policy *p, const ilfile_meta *m, const char *path) {
  int rc = il_save(p, path);
  if (rc != IB_OK) return rc;
  char mp[1100];
  snprintf(mp, sizeof mp, "%s.meta", path);
  FILE *f = fopen(mp, "w");
  if (!f) return ib_fail(IB_EIO, "cannot write %s: %s", mp, strerror(errno));
  const il_config *c = &m->il;
  fprintf(f,
          "ibrl-il-meta 1\nkind %s\nobs_dim %d\nact_dim %d\nlayers %d\nhidden %d\ndropout %.9g\nlatent %d\n"
          "kl_weight %.9g\nframe_dim %d\nstep_dim %d\nchunk %d\nn_stack %d\ntask %s\nobs_keys %s\n",
          c->kind == IL_CVAE ? "cvae" : "bc", c->obs_dim, c->act_dim, c->n_layers, c->hidden, (double)c->dropout,
          c->latent, (double)c->kl_weight, m->frame_dim, m->step_dim, m->chunk, m->n_stack, m->task[0] ? m->task : "-",
          m->obs_keys[0] ? m->obs_keys : "-");
  if (fclose(f) != 0) return ib_fail(IB_EIO, "writing %s failed", mp);
  return IB_OK;
}

int ilfile_meta_read(ilfile_meta *m, const char *path) {
  memset(m, 0, sizeof *m);
  m->il = il_config_default();
  char mp[1100];
  snprintf(mp, sizeof mp, "%s.meta", path);
  FILE *f = fopen(mp, "r");
  if (!f)
    return ib_fail(IB_EIO, "cannot open IL policy %s (meta file %s: %s) (HINT: create it with ibrl-il train --out %s)", path,
                   mp, strerror(errno), path);
  char line[1024], key[64], val[900];
  int lineno = 0, seen = 0, rc = IB_OK;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    line[strcspn(line, "\n")] = 0;
    if (sscanf(line, "%63s %899s", key, val) != 2) {
      rc = ib_fail(IB_EPROTO, "%s line %d: '%s' is not 'key value'", mp, lineno, line);
      break;
    }
    if (lineno == 1) {
      if (strcmp(key, "ibrl-il-meta") || strcmp(val, "1")) {
        rc = ib_fail(IB_EPROTO, "%s: not an ibrl-il meta file of version 1 (HINT: re-run ibrl-il train)", mp);
        break;
      }
      continue;
    }
    char *end;
    long iv = strtol(val, &end, 10);
    int is_int = *end == 0;
    double fv = strtod(val, &end);
    int is_num = *end == 0;
    il_config *c = &m->il;
#define INT_KEY(name, dst)                                                                             \
  if (!strcmp(key, name)) {                                                                            \
    if (!is_int || iv < 0 || iv > 1000000) {                                                           \
      rc = ib_fail(IB_EPROTO, "%s line %d: %s '%s' is not a non-negative integer", mp, lineno, key, val); \
      break;                                                                                           \
    }                                                                                                  \
    dst = (int)iv;                                                                                     \
    seen++;                                                                                            \
    continue;                                                                                          \
  }
    INT_KEY("obs_dim", c->obs_dim)
    INT_KEY("act_dim", c->act_dim)
    INT_KEY("layers", c->n_layers)
    INT_KEY("hidden", c->hidden)
    INT_KEY("latent", c->latent)
    INT_KEY("frame_dim", m->frame_dim)
    INT_KEY("step_dim", m->step_dim)
    INT_KEY("chunk", m->chunk)
    INT_KEY("n_stack", m->n_stack)
#undef INT_KEY
    if (!strcmp(key, "dropout") || !strcmp(key, "kl_weight")) {
      if (!is_num) {
        rc = ib_fail(IB_EPROTO, "%s line %d: %s '%s' is not a number", mp, lineno, key, val);
        break;
      }
      if (key[0] == 'd') c->dropout = (float)fv;
      else c->kl_weight = (float)fv;
      seen++;
    } else if (!strcmp(key, "kind")) {
      if (!strcmp(val, "bc")) c->kind = IL_BC;
      else if (!strcmp(val, "cvae")) c->kind = IL_CVAE;
      else {
        rc = ib_fail(IB_EPROTO, "%s line %d: kind '%s' is not bc or cvae", mp, lineno, val);
        break;
      }
      seen++;
    } else if (!strcmp(key, "task") || !strcmp(key, "obs_keys")) {
      char *dst = key[0] == 't' ? m->task : m->obs_keys;
      size_t cap = key[0] == 't' ? sizeof m->task : sizeof m->obs_keys;
      size_t len = strcmp(val, "-") ? strlen(val) : 0;
      if (len >= cap) {
        rc = ib_fail(IB_EPROTO, "%s line %d: %s is longer than %zu characters", mp, lineno, key, cap - 1);
        break;
      }
      memcpy(dst, val, len);
      dst[len] = 0;
      seen++;
    } else {
      rc = ib_fail(IB_EPROTO, "%s line %d: unknown key '%s' (HINT: written by a newer ibrl-il?)", mp, lineno, key);
      break;
    }
  }
  fclose(f);
  if (rc == IB_OK && seen != 14) rc = ib_fail(IB_EPROTO, "%s: %d of 14 keys present (HINT: the file is truncated)", mp, seen);
  if (rc == IB_OK && (m->chunk < 1 || m->n_stack < 1 || m->il.act_dim != m->chunk * m->step_dim ||
                      m->il.obs_dim != m->n_stack * m->frame_dim))
    rc = ib_fail(IB_EPROTO, "%s: act_dim %d != chunk %d x step_dim %d, or obs_dim %d != n_stack %d x frame_dim %d", mp,
                 m->il.act_dim, m->chunk, m->step_dim, m->il.obs_dim, m->n_stack, m->frame_dim);
  return rc;
}

int ilfile_load(il_policy *p, ilfile_meta *m, const char *path, int max_batch) {
  memset(p, 0, sizeof *p);
  int rc = ilfile_meta_read(m, path);
  if (rc != IB_OK) return rc;
  il_config c = m->il;
  c.max_batch = max_batch;
  if ((rc = il_init(p, &c)) != IB_OK) return rc;
  if ((rc = il_load(p, path)) != IB_OK) {
    il_free(p);
    memset(p, 0, sizeof *p);
    return rc;
  }
  return IB_OK;
}
