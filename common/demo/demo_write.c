/* demo_write.c: writing robomimic-style demo files (see demo.h).
 *
 * Design. The writer streams one episode at a time into path.tmp and renames it into place on
 * close, so an interrupted `ibrl-demos generate` never leaves a half file that a later run would
 * trust. Every episode is validated with the reader's rules before anything is written. Obs
 * groups track link creation order, so a reader without a key setting gets the writer's key
 * order back. Strings are variable-length UTF-8 (what h5py writes), numbers little-endian
 * float32, dones uint8. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo_internal.h"
#include "ib.h"

/* ---- writing ---- */

void demo_writer_init(void) { (void)H5dont_atexit(); /* fails only after HDF5 started: then too late, harmless */ }

struct demo_writer {
  hid_t f, data;
  char *path, *tmp_path;
  demo_key *keys; /* owned copy */
  int n_keys, obs_dim, act_dim;
  long n_demos, total;
  float *scratch; /* grows to the largest per-key column block */
  size_t scratch_cap;
};

static int attr_write_i64(hid_t obj, const char *name, long long v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_LLONG, &v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return rc < 0 ? -1 : 0;
}

static int attr_write_string(hid_t obj, const char *name, const char *s) {
  hid_t ty = H5Tcopy(H5T_C_S1);
  H5Tset_size(ty, H5T_VARIABLE);
  H5Tset_cset(ty, H5T_CSET_UTF8);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, ty, &s);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(ty);
  return rc < 0 ? -1 : 0;
}

static int ds_write(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *buf, int rank, hsize_t d0,
                    hsize_t d1) {
  hsize_t dims[2] = {d0, d1};
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  return rc < 0 ? -1 : 0;
}

/* Creates a group whose links keep creation order, so readers recover our key order. */
static hid_t group_create_ordered(hid_t loc, const char *name) {
  hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
  H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
  H5Pclose(gcpl);
  return g;
}

int demo_writer_open(demo_writer **out, const char *path, const demo_key *keys, int n_keys, int act_dim,
                     const char *env_args) {
  IB_CHECK(out != NULL && path != NULL && keys != NULL && n_keys > 0 && act_dim > 0);
  *out = NULL;
  int obs_dim = 0;
  for (int i = 0; i < n_keys; i++) {
    if (keys[i].dim <= 0 || !keys[i].name[0] || strchr(keys[i].name, '/'))
      return ib_fail(IB_EINVAL, "obs key %d ('%s', dim %d) is not a valid part (HINT: a non-empty name without '/' and dim > 0)", i,
                     keys[i].name, keys[i].dim);
    obs_dim += keys[i].dim;
  }
  demo_writer *w = ib_xcalloc(1, sizeof *w);
  w->path = ib_xstrdup(path);
  size_t tl = strlen(path) + 5;
  w->tmp_path = ib_xmalloc(tl);
  snprintf(w->tmp_path, tl, "%s.tmp", path);
  w->keys = ib_xmalloc((size_t)n_keys * sizeof *keys);
  memcpy(w->keys, keys, (size_t)n_keys * sizeof *keys);
  w->n_keys = n_keys;
  w->obs_dim = obs_dim;
  w->act_dim = act_dim;
  demo__quiet q = demo__quiet_on();
  w->f = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  w->data = w->f < 0 ? -1 : H5Gcreate2(w->f, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = IB_OK;
  if (w->f < 0 || w->data < 0)
    rc = ib_fail(IB_EIO, "cannot create demo file '%s' (HINT: does the folder exist and is it writable?)", w->tmp_path);
  else if (env_args && attr_write_string(w->data, "env_args", env_args) < 0)
    rc = ib_fail(IB_EIO, "%s: writing data/env_args failed", w->tmp_path);
  demo__quiet_off(q);
  if (rc < 0) {
    demo_writer_abort(w);
    return rc;
  }
  *out = w;
  return IB_OK;
}

int demo_writer_add(demo_writer *w, const float *obs, const float *actions, const float *rewards, const uint8_t *dones,
                    const float *next_obs, int T) {
  IB_CHECK(w != NULL && obs != NULL && actions != NULL && rewards != NULL && dones != NULL);
  char name[DEMO_NAME_MAX];
  snprintf(name, sizeof name, "demo_%ld", w->n_demos);
  if (T <= 0) return ib_fail(IB_EPROTO, "%s: refusing to write an empty episode as %s", w->path, name);
  /* Validate with the reader's rules before touching the file. */
  demo_episode e = {.T = T, .obs = (float *)obs, .actions = (float *)actions, .rewards = (float *)rewards};
  snprintf(e.name, sizeof e.name, "%s", name);
  int rc = demo__validate_episode(&e, w->obs_dim, w->act_dim, w->path);
  if (rc < 0) return rc;
  if (next_obs) {
    long bad = ib_first_nonfinite(next_obs, (size_t)T * (size_t)w->obs_dim);
    if (bad >= 0) return ib_fail(IB_ENONFINITE, "%s: %s next_obs element %ld is not finite", w->path, name, bad);
  }

  demo__quiet q = demo__quiet_on();
  hid_t dg = H5Gcreate2(w->data, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int bad = dg < 0;
  if (!bad) bad |= attr_write_i64(dg, "num_samples", T) < 0;
  for (int pass = 0; pass < 2 && !bad; pass++) {
    const float *src = pass == 0 ? obs : next_obs;
    if (!src) continue;
    hid_t og = group_create_ordered(dg, pass == 0 ? "obs" : "next_obs");
    bad |= og < 0;
    int col = 0;
    for (int k = 0; k < w->n_keys && !bad; k++) {
      int kd = w->keys[k].dim;
      size_t need = (size_t)T * (size_t)kd;
      if (need > w->scratch_cap) {
        w->scratch = ib_xrealloc(w->scratch, need * sizeof(float));
        w->scratch_cap = need;
      }
      for (int t = 0; t < T; t++)
        memcpy(w->scratch + (size_t)t * kd, src + (size_t)t * w->obs_dim + col, (size_t)kd * sizeof(float));
      bad |= ds_write(og, w->keys[k].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, w->scratch, 2, (hsize_t)T, (hsize_t)kd) < 0;
      col += kd;
    }
    if (og >= 0) H5Gclose(og);
  }
  if (!bad) bad |= ds_write(dg, "actions", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, actions, 2, (hsize_t)T, (hsize_t)w->act_dim) < 0;
  if (!bad) bad |= ds_write(dg, "rewards", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rewards, 1, (hsize_t)T, 1) < 0;
  if (!bad) bad |= ds_write(dg, "dones", H5T_STD_U8LE, H5T_NATIVE_UINT8, dones, 1, (hsize_t)T, 1) < 0;
  if (dg >= 0) H5Gclose(dg);
  demo__quiet_off(q);
  if (bad) return ib_fail(IB_EIO, "%s: writing %s failed (HINT: disk full?)", w->tmp_path, name);
  w->n_demos++;
  w->total += T;
  return IB_OK;
}

static void writer_release(demo_writer *w) {
  free(w->path);
  free(w->tmp_path);
  free(w->keys);
  free(w->scratch);
  free(w);
}

void demo_writer_abort(demo_writer *w) {
  if (!w) return;
  demo__quiet q = demo__quiet_on();
  if (w->data >= 0) H5Gclose(w->data);
  if (w->f >= 0) H5Fclose(w->f);
  demo__quiet_off(q);
  unlink(w->tmp_path);
  writer_release(w);
}

int demo_writer_close(demo_writer *w) {
  if (!w) return IB_OK;
  demo__quiet q = demo__quiet_on();
  int bad = attr_write_i64(w->data, "total", w->total) < 0;
  bad |= H5Gclose(w->data) < 0;
  w->data = -1;
  bad |= H5Fclose(w->f) < 0;
  w->f = -1;
  demo__quiet_off(q);
  int rc = IB_OK;
  if (bad) rc = ib_fail(IB_EIO, "%s: finishing the file failed (HINT: disk full?)", w->tmp_path);
  else if (rename(w->tmp_path, w->path) != 0)
    rc = ib_fail(IB_EIO, "cannot rename '%s' to '%s': %s", w->tmp_path, w->path, strerror(errno));
  if (rc < 0) unlink(w->tmp_path);
  writer_release(w);
  return rc;
}

int demo_save(const demo_set *s, const char *path) {
  IB_CHECK(s != NULL && path != NULL);
  if (s->n_keys <= 0 || s->act_dim <= 0) return ib_fail(IB_EINVAL, "demo set for '%s' has no obs keys or no actions", path);
  demo_writer *w;
  int rc = demo_writer_open(&w, path, s->keys, s->n_keys, s->act_dim, s->env_args);
  if (rc < 0) return rc;
  for (int i = 0; i < s->n_episodes; i++) {
    const demo_episode *e = &s->episodes[i];
    rc = demo_writer_add(w, e->obs, e->actions, e->rewards, e->dones, NULL, e->T);
    if (rc < 0) {
      demo_writer_abort(w);
      return rc;
    }
  }
  return demo_writer_close(w);
}
