/* nt.c: naive references, finite-difference checks and the .tv reader (see nt.h).
 *
 * The gradient check perturbs one float at a time in place and re-evaluates the caller's loss,
 * so it needs nothing from the network but its arena pointer. The threshold combines a relative
 * test with a floor: float32 forward passes leave ~1e-7·|L|/h of noise in a central difference,
 * so elements whose true gradient is below that noise are compared against the floor. */
#include "nt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "th.h"

void nt_linear_naive(float *out, const float *inp, const float *w, const float *b, int B, int C, int OC) {
  for (int i = 0; i < B; i++)
    for (int o = 0; o < OC; o++) {
      double s = b ? b[o] : 0.0;
      for (int c = 0; c < C; c++) s += (double)inp[i * C + c] * w[o * C + c];
      out[i * OC + o] = (float)s;
    }
}

void nt_layernorm_naive(float *out, const float *inp, const float *g, const float *b, int B, int C, double eps) {
  for (int i = 0; i < B; i++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += inp[i * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (inp[i * C + c] - m) * (inp[i * C + c] - m);
    v /= C;
    for (int c = 0; c < C; c++) out[i * C + c] = (float)((inp[i * C + c] - m) / sqrt(v + eps) * g[c] + b[c]);
  }
}

void nt_fill(float *x, size_t n, float lo, float hi, rng *r) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(r);
}

void nt_fill_away(float *x, size_t n, float gap, rng *r) {
  for (size_t i = 0; i < n; i++) {
    float m = gap + (1.0f - gap) * rng_uniform(r);
    x[i] = rng_uniform(r) < 0.5f ? -m : m;
  }
}

int nt_gradcheck(const char *what, float *theta, const float *grad, size_t n, nt_loss_fn f, void *ctx,
                 double h, double tol, double floor) {
  double worst = 0.0;
  size_t wi = 0;
  double wa = 0.0, wn = 0.0;
  size_t nbad = 0;
  for (size_t i = 0; i < n; i++) {
    float keep = theta[i];
    theta[i] = (float)(keep + h);
    double lp = f(ctx);
    theta[i] = (float)(keep - h);
    double lm = f(ctx);
    theta[i] = keep;
    /* Divide by the step actually taken after float rounding, not the nominal 2h. */
    double step = (double)(float)(keep + h) - (double)(float)(keep - h);
    double gn = (lp - lm) / step, ga = grad[i];
    double err = fabs(ga - gn) / fmax(fabs(ga) + fabs(gn), floor);
    if (err > tol) nbad++;
    if (err > worst) {
      worst = err;
      wi = i;
      wa = ga;
      wn = gn;
    }
  }
  printf("    gradcheck %-28s n=%-5zu worst rel err %.2e at %zu (analytic %.6g, numeric %.6g)%s\n", what, n,
         worst, wi, wa, wn, nbad ? "  FAILED" : "");
  if (nbad)
    return ib_fail(IB_EMISMATCH, "gradcheck %s: %zu of %zu elements off; worst %zu: analytic %.6g vs numeric %.6g",
                   what, nbad, n, wi, wa, wn);
  return IB_OK;
}

int nt_dircheck(const char *what, float *theta, const float *grad, size_t n, nt_loss_fn f, void *ctx,
                double h, double tol, rng *r) {
  float *keep = malloc(n * sizeof(float));
  float *dir = malloc(n * sizeof(float));
  IB_CHECK(keep && dir);
  memcpy(keep, theta, n * sizeof(float));
  double gd = 0.0;
  for (size_t i = 0; i < n; i++) {
    dir[i] = (float)(rng_uniform(r) < 0.5f ? -h : h);
    gd += (double)grad[i] * dir[i];
  }
  for (size_t i = 0; i < n; i++) theta[i] = keep[i] + dir[i];
  double lp = f(ctx);
  for (size_t i = 0; i < n; i++) theta[i] = keep[i] - dir[i];
  double lm = f(ctx);
  memcpy(theta, keep, n * sizeof(float));
  free(keep);
  free(dir);
  double num = 0.5 * (lp - lm);
  double err = fabs(gd - num) / fmax(fabs(gd) + fabs(num), 1e-12);
  printf("    dircheck  %-28s n=%-5zu g.d %.8g vs (L+ - L-)/2 %.8g, rel err %.2e%s\n", what, n, gd, num, err,
         err > tol ? "  FAILED" : "");
  if (err > tol)
    return ib_fail(IB_EMISMATCH, "dircheck %s: g.d %.8g vs %.8g (rel err %.2e > %.1e)", what, gd, num, err, tol);
  return IB_OK;
}

/* ---- .tv reader ---- */

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

int nt_tv_load(nt_tv *tv, const char *file) {
  memset(tv, 0, sizeof *tv);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", IB_TESTDATA_DIR, file);
  FILE *f = fopen(path, "rb");
  if (!f)
    return ib_fail(IB_EIO, "%s: cannot open (HINT: run OMP_NUM_THREADS=1 /usr/bin/python3 tests/ref/gen_nn_vectors.py)",
                   path);
  char magic[4];
  uint32_t ver, count;
  if (!rd(f, magic, 4) || memcmp(magic, "IBTV", 4) || !rd(f, &ver, 4) || !rd(f, &count, 4)) {
    fclose(f);
    return ib_fail(IB_EPROTO, "%s: not a .tv file (bad magic or short header)", path);
  }
  if (ver != 1) {
    fclose(f);
    return ib_fail(IB_EPROTO, "%s: version %u, expected 1 (HINT: re-run tests/ref/gen_nn_vectors.py)", path, ver);
  }
  tv->t = calloc(count, sizeof(nt_tensor));
  IB_CHECK(tv->t);
  tv->count = (int)count;
  for (uint32_t i = 0; i < count; i++) {
    nt_tensor *t = &tv->t[i];
    uint32_t len, nd;
    if (!rd(f, &len, 4) || len > 256) goto bad;
    t->name = calloc(len + 1, 1);
    if (!rd(f, t->name, len) || !rd(f, &nd, 4) || nd < 1 || nd > 8) goto bad;
    t->ndim = (int)nd;
    t->n = 1;
    for (uint32_t d = 0; d < nd; d++) {
      uint32_t v;
      if (!rd(f, &v, 4) || v > (1u << 24)) goto bad;
      t->dims[d] = (int)v;
      t->n *= v;
    }
    t->data = malloc(t->n * sizeof(float) + 1);
    if (!rd(f, t->data, t->n * sizeof(float))) goto bad;
  }
  fclose(f);
  return IB_OK;
bad:
  fclose(f);
  nt_tv_free(tv);
  return ib_fail(IB_EPROTO, "%s: truncated or corrupt tensor record (HINT: re-run tests/ref/gen_nn_vectors.py)", path);
}

void nt_tv_free(nt_tv *tv) {
  for (int i = 0; i < tv->count; i++) {
    free(tv->t[i].name);
    free(tv->t[i].data);
  }
  free(tv->t);
  memset(tv, 0, sizeof *tv);
}

const float *nt_tv_get(const nt_tv *tv, const char *name, size_t n_expect) {
  for (int i = 0; i < tv->count; i++)
    if (!strcmp(tv->t[i].name, name)) {
      if (n_expect && tv->t[i].n != n_expect) {
        TH_CHECK_MSG(0, "tensor %s has %zu elements, test expects %zu", name, tv->t[i].n, n_expect);
        return NULL;
      }
      return tv->t[i].data;
    }
  TH_CHECK_MSG(0, "tensor %s not in the vector file (HINT: re-run tests/ref/gen_nn_vectors.py)", name);
  return NULL;
}
