/* ilfile.c: IL checkpoint = il_save's files + a "key value" meta file.
 *
 * Design. il_load needs a policy of the same shape, so the shape must be known before loading;
 * the meta file carries it in plain text (readable with cat, diffable). Floats are printed with
 * %.9g so they round-trip exactly. Version 2 appends the training record after the version-1
 * keys; the reader counts the two groups apart, so a version-1 file (no record) still loads and
 * a version-2 file missing part of its record is refused as truncated. */
#include "ilfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

int ilfile_save(const il_policy *p, const ilfile_meta *m, const char *path) {
  IB_CHECK(m->trained);
  if (strchr(m->demos, '\n'))
    return ib_fail(IB_EINVAL, "IL checkpoint %s: the demo file name holds a newline, which its meta file cannot record "
                   "(HINT: rename the demo file)", path);
  int rc = il_save(p, path);
  if (rc != IB_OK) return rc;
  char mp[1100];
  snprintf(mp, sizeof mp, "%s.meta", path);
  FILE *f = fopen(mp, "w");
  if (!f) return ib_fail(IB_EIO, "cannot write %s: %s", mp, strerror(errno));
  const il_config *c = &m->il;
  fprintf(f,
          "ibrl-il-meta 2\nkind %s\nobs_dim %d\nact_dim %d\nlayers %d\nhidden %d\ndropout %.9g\nlatent %d\n"
          "kl_weight %.9g\nframe_dim %d\nstep_dim %d\nchunk %d\nn_stack %d\ntask %s\nobs_keys %s\n",
          c->kind == IL_CVAE ? "cvae" : "bc", c->obs_dim, c->act_dim, c->n_layers, c->hidden, (double)c->dropout,
          c->latent, (double)c->kl_weight, m->frame_dim, m->step_dim, m->chunk, m->n_stack, m->task[0] ? m->task : "-",
          m->obs_keys[0] ? m->obs_keys : "-");
  fprintf(f, "steps %ld\nbatch %d\nlr %.9g\nseed %llu\nmax_demos %d\ndemos %s\n", m->steps, m->batch, (double)m->lr,
          (unsigned long long)m->seed, m->max_demos, m->demos[0] ? m->demos : "-");
  if (fclose(f) != 0) return ib_fail(IB_EIO, "writing %s failed", mp);
  return IB_OK;
}

#define ILFILE_BASE_KEYS 14 /* version 1 */
#define ILFILE_TRAIN_KEYS 6 /* added by version 2 */

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
  int lineno = 0, version = 0, seen = 0, seen_train = 0, rc = IB_OK;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    line[strcspn(line, "\n")] = 0;
    if (sscanf(line, "%63s %899s", key, val) != 2) {
      rc = ib_fail(IB_EPROTO, "%s line %d: '%s' is not 'key value'", mp, lineno, line);
      break;
    }
    if (lineno == 1) {
      if (strcmp(key, "ibrl-il-meta") || (strcmp(val, "1") && strcmp(val, "2"))) {
        rc = ib_fail(IB_EPROTO, "%s: not an ibrl-il meta file of version 1 or 2 (HINT: re-run ibrl-il train)", mp);
        break;
      }
      version = val[0] - '0';
      continue;
    }
    char *end;
    long iv = strtol(val, &end, 10);
    int is_int = *end == 0;
    double fv = strtod(val, &end);
    int is_num = *end == 0;
    il_config *c = &m->il;
#define INT_KEY(name, dst, count)                                                                      \
  if (!strcmp(key, name)) {                                                                            \
    if (!is_int || iv < 0 || iv > 1000000) {                                                           \
      rc = ib_fail(IB_EPROTO, "%s line %d: %s '%s' is not a non-negative integer", mp, lineno, key, val); \
      break;                                                                                           \
    }                                                                                                  \
    dst = (int)iv;                                                                                     \
    count++;                                                                                           \
    continue;                                                                                          \
  }
    INT_KEY("obs_dim", c->obs_dim, seen)
    INT_KEY("act_dim", c->act_dim, seen)
    INT_KEY("layers", c->n_layers, seen)
    INT_KEY("hidden", c->hidden, seen)
    INT_KEY("latent", c->latent, seen)
    INT_KEY("frame_dim", m->frame_dim, seen)
    INT_KEY("step_dim", m->step_dim, seen)
    INT_KEY("chunk", m->chunk, seen)
    INT_KEY("n_stack", m->n_stack, seen)
    INT_KEY("batch", m->batch, seen_train)
    INT_KEY("max_demos", m->max_demos, seen_train)
#undef INT_KEY
    if (!strcmp(key, "dropout") || !strcmp(key, "kl_weight") || !strcmp(key, "lr")) {
      if (!is_num) {
        rc = ib_fail(IB_EPROTO, "%s line %d: %s '%s' is not a number", mp, lineno, key, val);
        break;
      }
      if (key[0] == 'l') {
        m->lr = (float)fv;
        seen_train++;
      } else {
        if (key[0] == 'd') c->dropout = (float)fv;
        else c->kl_weight = (float)fv;
        seen++;
      }
    } else if (!strcmp(key, "steps")) {
      if (!is_int || iv < 0) {
        rc = ib_fail(IB_EPROTO, "%s line %d: steps '%s' is not a non-negative integer", mp, lineno, val);
        break;
      }
      m->steps = iv;
      seen_train++;
    } else if (!strcmp(key, "seed")) {
      errno = 0;
      unsigned long long u = strtoull(val, &end, 10);
      if (errno || *end || val[0] == '-') {
        rc = ib_fail(IB_EPROTO, "%s line %d: seed '%s' is not a non-negative integer", mp, lineno, val);
        break;
      }
      m->seed = (uint64_t)u;
      seen_train++;
    } else if (!strcmp(key, "kind")) {
      if (!strcmp(val, "bc")) c->kind = IL_BC;
      else if (!strcmp(val, "cvae")) c->kind = IL_CVAE;
      else {
        rc = ib_fail(IB_EPROTO, "%s line %d: kind '%s' is not bc or cvae", mp, lineno, val);
        break;
      }
      seen++;
    } else if (!strcmp(key, "task") || !strcmp(key, "obs_keys") || !strcmp(key, "demos")) {
      char *dst = key[0] == 't' ? m->task : key[0] == 'o' ? m->obs_keys : m->demos;
      size_t cap = key[0] == 't' ? sizeof m->task : key[0] == 'o' ? sizeof m->obs_keys : sizeof m->demos;
      /* a path may hold spaces: the demo file is the rest of the line after "demos " */
      const char *v = val;
      if (key[0] == 'd') {
        v = strstr(line, key) + strlen(key);
        v += strspn(v, " \t");
      }
      size_t len = strcmp(v, "-") ? strlen(v) : 0;
      if (len >= cap) {
        rc = ib_fail(IB_EPROTO, "%s line %d: %s is longer than %zu characters", mp, lineno, key, cap - 1);
        break;
      }
      memcpy(dst, v, len);
      dst[len] = 0;
      if (key[0] == 'd') seen_train++;
      else seen++;
    } else {
      rc = ib_fail(IB_EPROTO, "%s line %d: unknown key '%s' (HINT: written by a newer ibrl-il?)", mp, lineno, key);
      break;
    }
  }
  fclose(f);
  if (rc == IB_OK && version == 0) rc = ib_fail(IB_EPROTO, "%s is empty (HINT: re-run ibrl-il train)", mp);
  const int want_train = version == 2 ? ILFILE_TRAIN_KEYS : 0;
  if (rc == IB_OK && (seen != ILFILE_BASE_KEYS || seen_train != want_train))
    rc = ib_fail(IB_EPROTO,
                 "%s: %d of %d keys present, version %d (HINT: the file is truncated or was edited; "
                 "re-run ibrl-il train)",
                 mp, seen + seen_train, ILFILE_BASE_KEYS + want_train, version);
  if (rc == IB_OK) m->trained = version == 2;
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
