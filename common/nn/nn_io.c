/* nn_io.c: network checkpoints (nn_mlp_save/load, nn_ens_save/load).
 *
 * Format, version 1, little-endian (the byte order of every machine we run on; the magic would
 * read "NNBI" on a big-endian host, so such a file is refused rather than misread):
 *   char[4] "IBNN" | u32 version | u32 kind (1 mlp, 2 ensemble) | u32 E (1 for an mlp)
 *   | u32 in_dim | u32 n_hidden | u32 hidden[8] | u32 out_dim | u32 layernorm | f32 dropout
 *   | u32 out_act | u32 flags (bit 0: Adam state present) | u64 n_params | i64 adam_t
 *   | f32 params[n_params] | [f32 m[n_params] | f32 v[n_params]] | u32 crc32(all bytes before)
 * The header is a fixed 96 bytes so a reader can report every structural difference before it
 * touches the payload. Saving writes "<path>.tmp", fsyncs it, renames it over path and fsyncs
 * the directory, so after a crash the path holds either the old or the new complete file.
 * Loading reads into scratch buffers and copies into the network only after the size, the
 * structure and the CRC all check out, so a refused file leaves the network as it was. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "nn.h"

#define NN_IO_VERSION 1u
#define NN_IO_KIND_MLP 1u
#define NN_IO_KIND_ENS 2u
#define NN_IO_FLAG_ADAM 1u

typedef struct io_header {
  char magic[4];
  uint32_t version, kind, E;
  uint32_t in_dim, n_hidden, hidden[NN_MAX_HIDDEN], out_dim, layernorm;
  float dropout;
  uint32_t out_act, flags;
  uint64_t n_params;
  int64_t adam_t;
} io_header;
_Static_assert(sizeof(io_header) == 96, "checkpoint header must be 96 bytes, no padding");

/* What one save or load works on: a net or an ensemble seen through its arenas. */
typedef struct io_view {
  uint32_t kind, E;
  const nn_mlp_spec *spec;
  size_t n_params;
  float *params, *m, *v; /* m, v NULL if not trainable */
  long *adam_t;
  const nn_mlp *shape;   /* a net (or head 0) with the layer shapes */
} io_view;

static void header_fill(io_header *h, const io_view *w, int with_adam) {
  memset(h, 0, sizeof *h);
  memcpy(h->magic, "IBNN", 4);
  h->version = NN_IO_VERSION;
  h->kind = w->kind;
  h->E = w->E;
  h->in_dim = (uint32_t)w->spec->in_dim;
  h->n_hidden = (uint32_t)w->spec->n_hidden;
  for (int i = 0; i < w->spec->n_hidden; i++) h->hidden[i] = (uint32_t)w->spec->hidden[i];
  h->out_dim = (uint32_t)w->spec->out_dim;
  h->layernorm = (uint32_t)w->spec->layernorm;
  h->dropout = w->spec->dropout;
  h->out_act = (uint32_t)w->spec->out_act;
  h->flags = with_adam ? NN_IO_FLAG_ADAM : 0;
  h->n_params = w->n_params;
  h->adam_t = *w->adam_t;
}

static int write_all(FILE *f, const void *p, size_t n, uint32_t *crc) {
  *crc = ib_crc32(*crc, p, n);
  return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int io_save(const io_view *w, const char *path, int with_adam) {
  IB_CHECK(path);
  if (with_adam && !w->m)
    return ib_fail(IB_EINVAL, "checkpoint %s: with_adam requested but the network has no Adam state "
                   "(HINT: it was built with no_train; save with with_adam 0)", path);
  io_header h;
  header_fill(&h, w, with_adam);
  size_t plen = strlen(path);
  char *tmp = ib_xmalloc(plen + 5);
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    int e = errno;
    free(tmp);
    return ib_fail(IB_EIO, "checkpoint %s: cannot create the temporary file: %s (HINT: does the folder exist "
                   "and is it writable?)", path, strerror(e));
  }
  uint32_t crc = 0;
  size_t bytes = w->n_params * sizeof(float);
  int bad = write_all(f, &h, sizeof h, &crc);
  bad |= write_all(f, w->params, bytes, &crc);
  if (with_adam) {
    bad |= write_all(f, w->m, bytes, &crc);
    bad |= write_all(f, w->v, bytes, &crc);
  }
  uint32_t tail = crc;
  bad |= fwrite(&tail, 1, sizeof tail, f) != sizeof tail;
  bad |= fflush(f) != 0;
  bad |= fsync(fileno(f)) != 0;
  int e = errno;
  bad |= fclose(f) != 0;
  if (bad) {
    unlink(tmp);
    free(tmp);
    return ib_fail(IB_EIO, "checkpoint %s: write failed: %s (HINT: disk full?)", path, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    e = errno;
    unlink(tmp);
    free(tmp);
    return ib_fail(IB_EIO, "checkpoint %s: rename from .tmp failed: %s", path, strerror(e));
  }
  free(tmp);
  /* Make the rename itself durable. A failure here is not worth failing the save over: the
   * data is written and named; only its survival across a power cut is less certain. */
  char *dcopy = ib_xstrdup(path);
  int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  free(dcopy);
  return IB_OK;
}

/* Compares the file's structure with the network's; returns IB_OK or IB_EMISMATCH naming the
 * first difference. */
static int check_structure(const io_header *h, const io_view *w, const char *path) {
  const char *kname[] = {"?", "an MLP", "an ensemble"};
  if (h->kind != w->kind)
    return ib_fail(IB_EMISMATCH, "checkpoint %s: file holds %s, the network is %s", path,
                   h->kind <= 2 ? kname[h->kind] : "an unknown kind", kname[w->kind]);
  if (h->E != w->E)
    return ib_fail(IB_EMISMATCH, "checkpoint %s: file has %u heads, network has %u", path, h->E, w->E);
  if (h->n_hidden != (uint32_t)w->spec->n_hidden)
    return ib_fail(IB_EMISMATCH, "checkpoint %s: file has %u Linear layers, network has %d", path,
                   h->n_hidden + 1, w->spec->n_hidden + 1);
  if (h->n_hidden > NN_MAX_HIDDEN)
    return ib_fail(IB_EPROTO, "checkpoint %s: n_hidden %u is corrupt", path, h->n_hidden);
  uint32_t in = h->in_dim;
  for (uint32_t l = 0; l <= h->n_hidden; l++) {
    uint32_t out = l < h->n_hidden ? h->hidden[l] : h->out_dim;
    const nn_layer *L = &w->shape->layer[l];
    if (out != (uint32_t)L->out || in != (uint32_t)L->in)
      return ib_fail(IB_EMISMATCH, "checkpoint %s: layer %u: file has %ux%u, network has %dx%d "
                     "(HINT: the spec the file was saved with differs)", path, l, out, in, L->out, L->in);
    in = out;
  }
  if (h->layernorm != (uint32_t)w->spec->layernorm)
    return ib_fail(IB_EMISMATCH, "checkpoint %s: file has layernorm %u, network has %d", path,
                   h->layernorm, w->spec->layernorm);
  if (h->out_act != (uint32_t)w->spec->out_act)
    return ib_fail(IB_EMISMATCH, "checkpoint %s: file has output activation %u, network has %d", path,
                   h->out_act, (int)w->spec->out_act);
  if (h->dropout != w->spec->dropout)
    return ib_fail(IB_EMISMATCH, "checkpoint %s: file has dropout %g, network has %g", path,
                   (double)h->dropout, (double)w->spec->dropout);
  if (h->n_params != w->n_params)
    return ib_fail(IB_EPROTO, "checkpoint %s: file says %llu params, its layers give %zu", path,
                   (unsigned long long)h->n_params, w->n_params);
  return IB_OK;
}

/* The HINT of a file whose size is not what its header implies. */
#define TRUNC_HINT                                                                                            \
  " (HINT: the file was cut short or written over: copied while it was being written, or saved on a full " \
  "disk? copy it again once complete, or write it again, e.g. retrain an IL policy with ibrl-il train)"

static int io_load(const io_view *w, const char *path) {
  IB_CHECK(path);
  FILE *f = fopen(path, "rb");
  if (!f)
    return ib_fail(IB_EIO, "checkpoint %s: cannot open: %s (HINT: check the path)", path, strerror(errno));
  int rc = IB_OK;
  float *buf = NULL;
  io_header h;
  if (fread(&h, 1, sizeof h, f) != sizeof h) {
    rc = ib_fail(IB_EPROTO, "checkpoint %s: shorter than the %zu-byte header (truncated)%s", path, sizeof h,
                 TRUNC_HINT);
    goto out;
  }
  if (memcmp(h.magic, "IBNN", 4) != 0) {
    rc = ib_fail(IB_EPROTO, "checkpoint %s: bad magic (not an ibrl network file)", path);
    goto out;
  }
  if (h.version != NN_IO_VERSION) {
    rc = ib_fail(IB_EPROTO, "checkpoint %s: version %u, this build reads version %u (HINT: re-save it "
                 "with a matching build)", path, h.version, NN_IO_VERSION);
    goto out;
  }
  if ((rc = check_structure(&h, w, path)) != IB_OK) goto out;
  int has_adam = (h.flags & NN_IO_FLAG_ADAM) != 0;
  size_t narr = has_adam ? 3 : 1, bytes = w->n_params * sizeof(float);
  if (fseek(f, 0, SEEK_END) != 0) {
    rc = ib_fail(IB_EIO, "checkpoint %s: cannot seek: %s", path, strerror(errno));
    goto out;
  }
  long fsz = ftell(f);
  size_t want = sizeof h + narr * bytes + sizeof(uint32_t);
  if (fsz < 0 || (size_t)fsz != want) {
    rc = ib_fail(IB_EPROTO, "checkpoint %s: %ld bytes, the header implies %zu (%s)%s", path, fsz, want,
                 fsz >= 0 && (size_t)fsz < want ? "truncated" : "trailing data", TRUNC_HINT);
    goto out;
  }
  fseek(f, (long)sizeof h, SEEK_SET);
  buf = ib_xmalloc(narr * bytes);
  uint32_t stored;
  if (fread(buf, 1, narr * bytes, f) != narr * bytes || fread(&stored, 1, sizeof stored, f) != sizeof stored) {
    rc = ib_fail(IB_EIO, "checkpoint %s: read failed", path);
    goto out;
  }
  uint32_t crc = ib_crc32(ib_crc32(0, &h, sizeof h), buf, narr * bytes);
  if (crc != stored) {
    rc = ib_fail(IB_ECHECKSUM, "checkpoint %s: CRC-32 %08x does not match the stored %08x (HINT: the file "
                 "is corrupt; use an older checkpoint)", path, crc, stored);
    goto out;
  }
  long bad = ib_first_nonfinite(buf, w->n_params);
  if (bad >= 0) {
    rc = ib_fail(IB_ENONFINITE, "checkpoint %s: parameter %ld is not finite", path, bad);
    goto out;
  }
  memcpy(w->params, buf, bytes);
  if (w->m) {
    if (has_adam) {
      memcpy(w->m, buf + w->n_params, bytes);
      memcpy(w->v, buf + 2 * w->n_params, bytes);
      *w->adam_t = (long)h.adam_t;
    } else {
      memset(w->m, 0, bytes);
      memset(w->v, 0, bytes);
      *w->adam_t = 0;
    }
  }
out:
  free(buf);
  fclose(f);
  return rc;
}

static io_view view_mlp(const nn_mlp *net) {
  IB_CHECK(net && net->params && net->owns_arenas);
  io_view w = {NN_IO_KIND_MLP, 1, &net->spec, net->n_params, net->params, net->adam_m, net->adam_v,
               (long *)&net->adam_t, net};
  return w;
}

static io_view view_ens(const nn_ens *ens) {
  IB_CHECK(ens && ens->params);
  io_view w = {NN_IO_KIND_ENS, (uint32_t)ens->E, &ens->head[0].spec, ens->n_params, ens->params,
               ens->adam_m, ens->adam_v, (long *)&ens->adam_t, &ens->head[0]};
  return w;
}

int nn_mlp_save(const nn_mlp *net, const char *path, int with_adam) {
  io_view w = view_mlp(net);
  return io_save(&w, path, with_adam);
}

int nn_ens_save(const nn_ens *ens, const char *path, int with_adam) {
  io_view w = view_ens(ens);
  return io_save(&w, path, with_adam);
}

int nn_mlp_load(nn_mlp *net, const char *path) {
  io_view w = view_mlp(net);
  return io_load(&w, path);
}

int nn_ens_load(nn_ens *ens, const char *path) {
  io_view w = view_ens(ens);
  return io_load(&w, path);
}
