/* demo_read.c: loading and validating robomimic-style demo files (see demo.h).
 *
 * Design. Reading happens in two passes over each demo: first every dataset's shape is checked
 * against the others (so a ragged file is rejected before anything big is allocated), then the
 * data is read with HDF5's own type conversion into float (robomimic stores float64 and int64;
 * any integer or float class is accepted). Validation (ranges, finiteness) runs on the loaded
 * floats, and the first offending element is named: demo, dataset, row, column. Existence is
 * checked before anything is opened and HDF5's own error stack is silenced around our calls,
 * so the user sees one clear message from ib_errmsg() instead of a page of HDF5 internals.
 * Demo groups are sorted by their number; obs keys come from the first demo and every later
 * demo must have the same keys and widths. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo_internal.h"
#include "ib.h"

/* ---- small helpers ---- */

static int link_exists(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

/* Shape of dataset `name` under `loc`: rank into *rank, dims into d[0..2). Numeric class only. */
static int ds_shape(int *rank, hsize_t d[2], hid_t loc, const char *name, const char *path, const char *demo) {
  if (!link_exists(loc, name))
    return ib_fail(IB_ENOTFOUND, "%s: %s has no dataset '%s' (HINT: robomimic layout is data/demo_N/{obs/<key>, actions, rewards, dones})",
                   path, demo, name);
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) return ib_fail(IB_EPROTO, "%s: %s/%s is not a dataset", path, demo, name);
  hid_t ty = H5Dget_type(ds);
  H5T_class_t cls = H5Tget_class(ty);
  H5Tclose(ty);
  hid_t sp = H5Dget_space(ds);
  int r = H5Sget_simple_extent_ndims(sp);
  hsize_t dims[8] = {0};
  if (r > 0 && r <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  H5Dclose(ds);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    return ib_fail(IB_EPROTO, "%s: %s/%s is not numeric (HINT: only low-dim numeric datasets are supported)", path, demo, name);
  if (r < 1 || r > 2)
    return ib_fail(IB_EPROTO, "%s: %s/%s has rank %d, expected (T,) or (T, dim) (HINT: image observations are not supported; choose low-dim obs keys)",
                   path, demo, name, r);
  *rank = r;
  d[0] = dims[0];
  d[1] = r == 2 ? dims[1] : 1;
  return IB_OK;
}

/* Reads a whole numeric dataset as float into dst (size checked by the caller via ds_shape). */
static int ds_read_float(float *dst, hid_t loc, const char *name, const char *path, const char *demo) {
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) return ib_fail(IB_EIO, "%s: cannot open %s/%s", path, demo, name);
  herr_t rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
  H5Dclose(ds);
  if (rc < 0) return ib_fail(IB_EIO, "%s: reading %s/%s failed (HINT: is the file truncated?)", path, demo, name);
  return IB_OK;
}

/* Reads a string attribute (variable or fixed length). Returns a malloc'd copy or NULL. */
static char *attr_read_string(hid_t obj, const char *name) {
  if (H5Aexists(obj, name) <= 0) return NULL;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return NULL;
  hid_t ty = H5Aget_type(a);
  char *out = NULL;
  if (H5Tget_class(ty) == H5T_STRING) {
    if (H5Tis_variable_str(ty) > 0) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(ty));
      char *s = NULL;
      if (H5Aread(a, mt, &s) >= 0 && s) {
        out = ib_xstrdup(s);
        H5free_memory(s);
      }
      H5Tclose(mt);
    } else {
      size_t n = H5Tget_size(ty);
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, n + 1);
      H5Tset_strpad(mt, H5T_STR_NULLTERM);
      char *s = ib_xcalloc(n + 2, 1);
      if (H5Aread(a, mt, s) >= 0) out = s;
      else free(s);
      H5Tclose(mt);
    }
  }
  H5Tclose(ty);
  H5Aclose(a);
  return out;
}

/* Reads an integer attribute; returns 1 if present and read. */
static int attr_read_i64(long long *v, hid_t obj, const char *name) {
  if (H5Aexists(obj, name) <= 0) return 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return 0;
  hid_t sp = H5Aget_space(a);
  hssize_t np = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  int ok = 0;
  if (np == 1) ok = H5Aread(a, H5T_NATIVE_LLONG, v) >= 0;
  H5Aclose(a);
  return ok;
}

/* Extracts the string value of "env_name" from a JSON text without a JSON parser: good enough
 * for robomimic's env_args, which is a flat-ish object with that key at the top level. */
static void env_name_from_args(char *dst, size_t cap, const char *json) {
  dst[0] = 0;
  if (!json) return;
  const char *p = strstr(json, "\"env_name\"");
  if (!p) return;
  p = strchr(p + 10, ':');
  if (!p) return;
  p++;
  while (*p == ' ' || *p == '\t' || *p == '\n') p++;
  if (*p != '"') return;
  p++;
  size_t i = 0;
  while (*p && *p != '"' && i + 1 < cap) dst[i++] = *p++;
  dst[i] = 0;
}

/* ---- demo enumeration ---- */

typedef struct name_list {
  char (*names)[DEMO_NAME_MAX];
  int n, cap;
  int only_demos; /* keep only demo_<digits> */
} name_list;

static herr_t collect_cb(hid_t g, const char *name, const H5L_info_t *info, void *op) {
  (void)g;
  (void)info;
  name_list *l = op;
  if (l->only_demos) {
    if (strncmp(name, "demo_", 5) != 0 || !name[5]) return 0;
    for (const char *c = name + 5; *c; c++)
      if (*c < '0' || *c > '9') return 0;
  }
  if (strlen(name) >= DEMO_NAME_MAX) return 0; /* cannot be one of ours; skip rather than truncate */
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->names = ib_xrealloc(l->names, (size_t)l->cap * sizeof *l->names);
  }
  snprintf(l->names[l->n++], DEMO_NAME_MAX, "%s", name);
  return 0;
}

static int demo_num_cmp(const void *a, const void *b) {
  long x = strtol((const char *)a + 5, NULL, 10), y = strtol((const char *)b + 5, NULL, 10);
  return (x > y) - (x < y);
}

/* Lists the links of group g in creation order when tracked, else in name order. */
static void list_links(name_list *l, hid_t g) {
  hid_t cpl = H5Gget_create_plist(g);
  unsigned flags = 0;
  if (cpl >= 0) {
    H5Pget_link_creation_order(cpl, &flags);
    H5Pclose(cpl);
  }
  H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  H5Literate(g, idx, H5_ITER_INC, NULL, collect_cb, l);
}

/* Opens `path` read-only with a clear error for missing / non-HDF5 files. */
static int file_open_ro(hid_t *f, const char *path) {
  if (access(path, R_OK) != 0)
    return ib_fail(IB_EIO, "demo file '%s': %s (HINT: create one with `ibrl-demos generate --out %s`)", path,
                   strerror(errno), path);
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
    return ib_fail(IB_EIO, "demo file '%s' is %s, not a file (HINT: pass the .hdf5 file itself, e.g. %s/demos.hdf5)", path,
                   S_ISDIR(st.st_mode) ? "a directory" : "a special file", path);
  demo__quiet q = demo__quiet_on(); /* a non-HDF5 file is our message, not HDF5's error stack */
  htri_t is_h5 = H5Fis_hdf5(path);
  demo__quiet_off(q);
  if (is_h5 <= 0)
    return ib_fail(IB_EIO, "demo file '%s' is not an HDF5 file (HINT: pass a robomimic-style .hdf5 written by `ibrl-demos "
                   "generate` or `ibrl-replayctl export`; a file cut short by a crash or a copy is not one either)", path);
  *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (*f < 0)
    return ib_fail(IB_EIO, "demo file '%s' could not be opened by HDF5 (HINT: is another process writing it, or is it "
                   "damaged? check it with h5dump -H)", path);
  return IB_OK;
}

/* Resolves the key list for the file: parses opts->obs_keys or lists obs/ of the first demo.
 * Dims are filled from the first demo; every later demo is checked against them. */
static int resolve_keys(demo_key **keys_out, int *n_out, hid_t obs0, const char *path, const char *demo0,
                        const char *csv) {
  name_list have = {0};
  list_links(&have, obs0);
  int rc = IB_OK;
  demo_key *keys = NULL;
  int n = 0;
  if (csv && csv[0]) {
    int cap = 1;
    for (const char *c = csv; *c; c++) cap += *c == ',';
    keys = ib_xcalloc((size_t)cap, sizeof *keys);
    n = demo_keys_parse(keys, cap, csv);
    if (n < 0) {
      rc = n;
      goto out;
    }
    for (int i = 0; i < n; i++) {
      if (!link_exists(obs0, keys[i].name)) {
        char list[1024] = "";
        size_t len = 0;
        for (int j = 0; j < have.n && len + DEMO_NAME_MAX + 3 < sizeof list; j++)
          len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", j ? ", " : "", have.names[j]);
        rc = ib_fail(IB_ENOTFOUND, "%s: obs key '%s' is not in %s/obs (HINT: the file has: %s)", path, keys[i].name,
                     demo0, len ? list : "(none)");
        goto out;
      }
    }
  } else {
    if (have.n == 0) {
      rc = ib_fail(IB_ENOTFOUND, "%s: %s/obs has no datasets (HINT: robomimic layout is data/demo_N/obs/<key>)", path, demo0);
      goto out;
    }
    /* Default: every low-dim key. Image-like (rank > 2) or non-numeric datasets are left out,
       so a robomimic image dataset still loads its low-dim part without a key setting. */
    keys = ib_xcalloc((size_t)have.n, sizeof *keys);
    for (int i = 0; i < have.n; i++) {
      int rank;
      hsize_t d[2];
      if (ds_shape(&rank, d, obs0, have.names[i], path, demo0) < 0) continue;
      snprintf(keys[n++].name, DEMO_NAME_MAX, "%s", have.names[i]);
    }
    if (n == 0) {
      rc = ib_fail(IB_ENOTFOUND, "%s: %s/obs has no low-dim numeric datasets (HINT: only (T,) or (T, dim) obs are supported)", path,
                   demo0);
      goto out;
    }
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++)
      if (!strcmp(keys[i].name, keys[j].name)) {
        rc = ib_fail(IB_EINVAL, "obs key '%s' is listed twice (HINT: each key once, e.g. \"state,lidar\")", keys[i].name);
        goto out;
      }
out:
  free(have.names);
  if (rc < 0) {
    free(keys);
    return rc;
  }
  *keys_out = keys;
  *n_out = n;
  return IB_OK;
}

/* ---- validation ---- */

int demo_set_validate(const demo_set *s, const char *what) {
  IB_CHECK(s != NULL);
  for (int i = 0; i < s->n_episodes; i++) {
    int rc = demo__validate_episode(&s->episodes[i], s->obs_dim, s->act_dim, what ? what : "demo set");
    if (rc < 0) return rc;
  }
  return IB_OK;
}

/* ---- loading ---- */

/* Loads one demo group into e (arrays allocated here). keys[].dim are fixed by the first demo
 * (first == 1) and checked for the others; *act_dim likewise. */
static int load_episode(demo_episode *e, hid_t dg, const char *path, demo_key *keys, int n_keys, int *obs_dim,
                        int *act_dim, int first) {
  const char *dn = e->name;
  int rank;
  hsize_t d[2];
  int rc = ds_shape(&rank, d, dg, "actions", path, dn);
  if (rc < 0) return rc;
  long T = (long)d[0];
  if (T <= 0) return ib_fail(IB_EPROTO, "%s: %s is empty (0 steps) (HINT: drop empty demos)", path, dn);
  if (T > (1L << 24)) return ib_fail(IB_EPROTO, "%s: %s has %ld steps; at most %ld are supported", path, dn, T, 1L << 24);
  int A = (int)d[1];
  if (first) *act_dim = A;
  else if (A != *act_dim)
    return ib_fail(IB_EMISMATCH, "%s: %s/actions has width %d but earlier demos have %d", path, dn, A, *act_dim);

  long long ns;
  if (attr_read_i64(&ns, dg, "num_samples") && ns != T)
    return ib_fail(IB_EPROTO, "%s: %s has num_samples = %lld but actions has %ld rows (HINT: ragged demo; rewrite the file)", path,
                   dn, ns, T);
  const char *vec[2] = {"rewards", "dones"};
  for (int i = 0; i < 2; i++) {
    if ((rc = ds_shape(&rank, d, dg, vec[i], path, dn)) < 0) return rc;
    if ((long)d[0] != T || d[1] != 1)
      return ib_fail(IB_EPROTO, "%s: %s/%s has shape (%llu, %llu) but actions has %ld rows (HINT: ragged demo; every array needs T rows)",
                     path, dn, vec[i], (unsigned long long)d[0], (unsigned long long)d[1], T);
  }
  if (!link_exists(dg, "obs"))
    return ib_fail(IB_ENOTFOUND, "%s: %s has no 'obs' group (HINT: robomimic layout is data/demo_N/obs/<key>)", path, dn);
  hid_t og = H5Gopen2(dg, "obs", H5P_DEFAULT);
  if (og < 0) return ib_fail(IB_EPROTO, "%s: %s/obs is not a group", path, dn);
  int od = 0;
  for (int k = 0; k < n_keys; k++) {
    char sub[2 * DEMO_NAME_MAX];
    snprintf(sub, sizeof sub, "%s/obs", dn);
    rc = ds_shape(&rank, d, og, keys[k].name, path, sub);
    if (rc < 0) break;
    if ((long)d[0] != T) {
      rc = ib_fail(IB_EPROTO, "%s: %s/obs/%s has %llu rows but actions has %ld (HINT: ragged demo; every array needs T rows)", path, dn,
                   keys[k].name, (unsigned long long)d[0], T);
      break;
    }
    if (first) keys[k].dim = (int)d[1];
    else if ((int)d[1] != keys[k].dim) {
      rc = ib_fail(IB_EMISMATCH, "%s: %s/obs/%s has width %d but earlier demos have %d", path, dn, keys[k].name, (int)d[1],
                   keys[k].dim);
      break;
    }
    od += keys[k].dim;
  }
  if (rc < 0) {
    H5Gclose(og);
    return rc;
  }
  if (first) *obs_dim = od;

  e->T = (int)T;
  e->obs = ib_xmalloc((size_t)T * (size_t)od * sizeof(float));
  e->actions = ib_xmalloc((size_t)T * (size_t)A * sizeof(float));
  e->rewards = ib_xmalloc((size_t)T * sizeof(float));
  e->dones = ib_xmalloc((size_t)T);
  float *tmp = ib_xmalloc((size_t)T * sizeof(float));
  int col = 0;
  for (int k = 0; k < n_keys && rc >= 0; k++) {
    int kd = keys[k].dim;
    float *part = ib_xmalloc((size_t)T * (size_t)kd * sizeof(float));
    rc = ds_read_float(part, og, keys[k].name, path, dn);
    if (rc >= 0)
      for (long t = 0; t < T; t++) memcpy(e->obs + (size_t)t * od + col, part + (size_t)t * kd, (size_t)kd * sizeof(float));
    free(part);
    col += kd;
  }
  H5Gclose(og);
  if (rc >= 0) rc = ds_read_float(e->actions, dg, "actions", path, dn);
  if (rc >= 0) rc = ds_read_float(e->rewards, dg, "rewards", path, dn);
  if (rc >= 0) rc = ds_read_float(tmp, dg, "dones", path, dn);
  if (rc >= 0)
    for (long t = 0; t < T; t++) e->dones[t] = tmp[t] != 0.0f;
  free(tmp);
  return rc;
}

static void cut_at_success(demo_episode *e) {
  for (int t = 0; t < e->T; t++)
    if (e->rewards[t] >= 1.0f) {
      e->T = t + 1;
      e->dones[t] = 1;
      return;
    }
}

int demo_load(demo_set *out, const char *path, const demo_load_opts *opts) {
  IB_CHECK(out != NULL && path != NULL);
  demo_load_opts o = {0};
  if (opts) o = *opts;
  memset(out, 0, sizeof *out);
  hid_t f = -1;
  int rc = file_open_ro(&f, path);
  if (rc < 0) return rc;
  demo__quiet q = demo__quiet_on();
  demo_set s = {0};
  name_list demos = {.only_demos = 1};
  hid_t data = -1;
  if (!link_exists(f, "data")) {
    rc = ib_fail(IB_ENOTFOUND, "%s has no 'data' group (HINT: not a robomimic-style demo file)", path);
    goto done;
  }
  data = H5Gopen2(f, "data", H5P_DEFAULT);
  if (data < 0) {
    rc = ib_fail(IB_EPROTO, "%s: 'data' is not a group", path);
    goto done;
  }
  H5Literate(data, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_cb, &demos);
  if (demos.n == 0) {
    rc = ib_fail(IB_ENOTFOUND, "%s: data/ holds no demo_<N> groups (HINT: an empty demo file)", path);
    goto done;
  }
  qsort(demos.names, (size_t)demos.n, sizeof *demos.names, demo_num_cmp);
  int n = demos.n;
  if (o.max_episodes > 0 && o.max_episodes < n) n = o.max_episodes;

  s.env_args = attr_read_string(data, "env_args");
  env_name_from_args(s.env_name, sizeof s.env_name, s.env_args);

  /* Keys come from the first demo's obs group. */
  {
    char p0[2 * DEMO_NAME_MAX + 8];
    snprintf(p0, sizeof p0, "%s/obs", demos.names[0]);
    if (!link_exists(data, demos.names[0]) || H5Lexists(data, p0, H5P_DEFAULT) <= 0) {
      rc = ib_fail(IB_ENOTFOUND, "%s: %s has no 'obs' group (HINT: robomimic layout is data/demo_N/obs/<key>)", path, demos.names[0]);
      goto done;
    }
    hid_t og = H5Gopen2(data, p0, H5P_DEFAULT);
    if (og < 0) {
      rc = ib_fail(IB_EPROTO, "%s: %s is not a group", path, p0);
      goto done;
    }
    rc = resolve_keys(&s.keys, &s.n_keys, og, path, demos.names[0], o.obs_keys);
    H5Gclose(og);
    if (rc < 0) goto done;
  }

  s.episodes = ib_xcalloc((size_t)n, sizeof *s.episodes);
  for (int i = 0; i < n; i++) {
    demo_episode *e = &s.episodes[i];
    snprintf(e->name, sizeof e->name, "%s", demos.names[i]);
    s.n_episodes = i + 1; /* so demo_set_free releases a partial episode too */
    hid_t dg = H5Gopen2(data, e->name, H5P_DEFAULT);
    if (dg < 0) {
      rc = ib_fail(IB_EPROTO, "%s: data/%s is not a group", path, e->name);
      goto done;
    }
    rc = load_episode(e, dg, path, s.keys, s.n_keys, &s.obs_dim, &s.act_dim, i == 0);
    H5Gclose(dg);
    if (rc < 0) goto done;
    if (o.cut_at_success) cut_at_success(e);
    s.total_steps += e->T;
  }
  rc = demo_set_validate(&s, path);

done:
  if (data >= 0) H5Gclose(data);
  H5Fclose(f);
  demo__quiet_off(q);
  free(demos.names);
  if (rc < 0) {
    demo_set_free(&s);
    return rc;
  }
  *out = s;
  return IB_OK;
}

void demo_set_free(demo_set *s) {
  if (!s) return;
  for (int i = 0; i < s->n_episodes && s->episodes; i++) {
    free(s->episodes[i].obs);
    free(s->episodes[i].actions);
    free(s->episodes[i].rewards);
    free(s->episodes[i].dones);
  }
  free(s->episodes);
  free(s->keys);
  free(s->env_args);
  memset(s, 0, sizeof *s);
}

int demo_file_keys(demo_key *keys, int *n, const char *path, int cap) {
  IB_CHECK(n != NULL && path != NULL && (keys != NULL || cap == 0));
  demo_load_opts o = {.max_episodes = 1};
  demo_set s;
  int rc = demo_load(&s, path, &o);
  if (rc < 0) return rc;
  *n = s.n_keys;
  for (int i = 0; i < s.n_keys && i < cap; i++) keys[i] = s.keys[i];
  demo_set_free(&s);
  return IB_OK;
}

int demo_keys_parse(demo_key *keys, int cap, const char *csv) {
  IB_CHECK(keys != NULL && csv != NULL);
  int n = 0;
  const char *p = csv;
  for (;;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == 0) return ib_fail(IB_EINVAL, "obs keys '%s' contain an empty name (HINT: e.g. \"state,lidar\")", csv);
    if (len >= DEMO_NAME_MAX) return ib_fail(IB_EINVAL, "obs key '%.*s' is too long (max %d)", (int)len, p, DEMO_NAME_MAX - 1);
    if (n == cap) return ib_fail(IB_EINVAL, "obs keys '%s': more than %d keys", csv, cap);
    memcpy(keys[n].name, p, len);
    keys[n].name[len] = 0;
    keys[n].dim = 0;
    n++;
    if (!c) break;
    p = c + 1;
  }
  return n;
}
