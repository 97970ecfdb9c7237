/* test_nn_par.c: the nn thread team (nn_set_threads > 1) computes what one thread computes.
 *
 * The team splits forward rows, backward rows, dW blocks and arena ranges between members and
 * sums bias/LayerNorm column partials in member order. Each case runs the same work with 1, 2
 * and 3 threads (3 does not divide the sizes, so uneven shares and empty shares are exercised)
 * and compares: element-wise passes (Adam, Polyak, zero, scale, dropout masks, forward outputs
 * of the same rows) must match to rounding of the sgemm blocking, the column sums to float
 * rounding. A partition bug (a missed row or column, a race on a shared buffer) shows up as a
 * gross mismatch. The last case uses an ensemble from two threads at once while the team is
 * busy (the serial fallback). */
#include <math.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "nn.h"
#include "nt.h"
#include "rng.h"
#include "th.h"

enum { MAXB = 256 };

static nn_mlp_spec critic_spec(void) {
  /* widths that are not multiples of the 16-float dW/column alignment */
  nn_mlp_spec s = {.in_dim = 29, .n_hidden = 2, .hidden = {72, 90}, .out_dim = 1, .layernorm = 1, .max_batch = MAXB};
  return s;
}

static nn_mlp_spec actor_spec(void) {
  nn_mlp_spec s = {.in_dim = 23, .n_hidden = 3, .hidden = {80, 64, 40}, .out_dim = 7, .dropout = 0.5f,
                   .out_act = NN_ACT_TANH, .max_batch = MAXB};
  return s;
}

/* What one run of the ensemble produces. */
typedef struct ens_out {
  float q[MAXB * 4], dx[MAXB * 29];
  float *grads, *params;
  size_t n;
} ens_out;

/* Two Adam steps of a 4-head ensemble on B rows (forward, backward with grads and dx), from the
 * same seed, with `threads` team members. */
static void run_ens(ens_out *o, int threads, int B) {
  nn_set_threads(threads);
  nn_mlp_spec s = critic_spec();
  nn_ens ens;
  rng init, data;
  rng_seed(&init, 3, "test", 0, "init");
  rng_seed(&data, 4, "test", 0, "data");
  TH_CHECK_EQ_INT(nn_ens_init(&ens, 4, &s, &init), IB_OK);
  float *x = ib_xaligned(sizeof(float) * MAXB * 29), *dq = ib_xaligned(sizeof(float) * MAXB * 4);
  nt_fill(x, (size_t)B * 29, -1, 1, &data);
  nt_fill(dq, (size_t)B * 4, -1, 1, &data);
  nn_adam_cfg cfg = nn_adam_defaults(1e-3f);
  for (int step = 0; step < 2; step++) {
    nn_ens_zero_grad(&ens);
    nn_ens_forward(&ens, o->q, x, B, NULL, 4, 1, NULL);
    memset(o->dx, 0, sizeof o->dx);
    nn_ens_backward(&ens, o->dx, dq, 1);
    if (step == 0) nn_ens_adam_step(&ens, &cfg);
  }
  o->n = ens.n_params;
  o->grads = malloc(sizeof(float) * o->n);
  o->params = malloc(sizeof(float) * o->n);
  memcpy(o->grads, ens.grads, sizeof(float) * o->n);
  memcpy(o->params, ens.params, sizeof(float) * o->n);
  nn_ens_free(&ens);
  free(x);
  free(dq);
  nn_set_threads(1);
}

static void ens_out_free(ens_out *o) {
  free(o->grads);
  free(o->params);
}

static void test_ensemble_team(void) {
  static const int Bs[] = {32, 37, 256};
  for (size_t bi = 0; bi < IB_ARRAY_LEN(Bs); bi++) {
    int B = Bs[bi];
    static ens_out ref, got;
    run_ens(&ref, 1, B);
    for (int t = 2; t <= 3; t++) {
      run_ens(&got, t, B);
      TH_CHECK_MSG(th_allclose("ensemble q", got.q, ref.q, (size_t)B * 4, 1e-6, 1e-5), "B=%d threads=%d", B, t);
      TH_CHECK_MSG(th_allclose("ensemble dx", got.dx, ref.dx, (size_t)B * 29, 1e-6, 1e-5), "B=%d threads=%d",
                   B, t);
      TH_CHECK_MSG(th_allclose("ensemble grads", got.grads, ref.grads, ref.n, 1e-6, 1e-4), "B=%d threads=%d", B,
                   t);
      TH_CHECK_MSG(th_allclose("ensemble params after Adam", got.params, ref.params, ref.n, 1e-6, 1e-5),
                   "B=%d threads=%d", B, t);
      ens_out_free(&got);
    }
    ens_out_free(&ref);
  }
}

/* The actor shape: dropout masks drawn in the same order whatever the team, tanh output, and a
 * second backward with frozen params and an input gradient only. */
static void run_actor(float *y, float *grads, float *dx, size_t *n, int threads, int B) {
  nn_set_threads(threads);
  nn_mlp_spec s = actor_spec();
  nn_mlp net;
  rng init, drop, data;
  rng_seed(&init, 5, "test", 0, "init");
  rng_seed(&drop, 5, "test", 0, "dropout");
  rng_seed(&data, 6, "test", 0, "data");
  TH_CHECK_EQ_INT(nn_mlp_init(&net, &s, &init), IB_OK);
  float *x = ib_xaligned(sizeof(float) * MAXB * 23), *d = ib_xaligned(sizeof(float) * MAXB * 7);
  nt_fill(x, (size_t)B * 23, -1, 1, &data);
  nt_fill(d, (size_t)B * 7, -1, 1, &data);
  nn_mlp_zero_grad(&net);
  nn_mlp_forward(&net, y, x, B, 1, &drop);
  nn_mlp_backward(&net, NULL, d, 1);
  memset(dx, 0, sizeof(float) * (size_t)B * 23);
  nn_mlp_backward(&net, dx, d, 0);
  *n = net.n_params;
  memcpy(grads, net.grads, sizeof(float) * net.n_params);
  nn_mlp_free(&net);
  free(x);
  free(d);
  nn_set_threads(1);
}

static void test_actor_team(void) {
  enum { NP = 23 * 80 + 80 + 80 * 64 + 64 + 64 * 40 + 40 + 40 * 7 + 7 };
  static float y1[MAXB * 7], g1[NP], dx1[MAXB * 23], y2[MAXB * 7], g2[NP], dx2[MAXB * 23];
  static const int Bs[] = {33, 256};
  for (size_t bi = 0; bi < IB_ARRAY_LEN(Bs); bi++) {
    int B = Bs[bi];
    size_t n1, n2;
    run_actor(y1, g1, dx1, &n1, 1, B);
    TH_CHECK_EQ_INT((int)n1, NP);
    for (int t = 2; t <= 3; t++) {
      run_actor(y2, g2, dx2, &n2, t, B);
      TH_CHECK_MSG(th_allclose("actor out", y2, y1, (size_t)B * 7, 1e-6, 1e-5), "B=%d threads=%d", B, t);
      TH_CHECK_MSG(th_allclose("actor grads", g2, g1, n1, 1e-6, 1e-4), "B=%d threads=%d", B, t);
      TH_CHECK_MSG(th_allclose("actor dx (frozen)", dx2, dx1, (size_t)B * 23, 1e-6, 1e-5), "B=%d threads=%d", B,
                   t);
    }
  }
}

/* Arena passes are element-wise: identical bits whatever the team; the norm to double rounding. */
static void test_arena_team(void) {
  const size_t n = 200003; /* above the team threshold, not a multiple of 16 */
  float *p[2], *m[2], *v[2], *g, *t[2];
  rng r;
  rng_seed(&r, 7, "test", 0, "data");
  g = malloc(n * sizeof(float));
  nt_fill(g, n, -1, 1, &r);
  double norm[2];
  for (int k = 0; k < 2; k++) {
    nn_set_threads(k == 0 ? 1 : 2);
    p[k] = calloc(n, sizeof(float));
    m[k] = calloc(n, sizeof(float));
    v[k] = calloc(n, sizeof(float));
    t[k] = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) p[k][i] = 0.5f - (float)(i % 97) / 97.0f;
    nn_adam_cfg cfg = nn_adam_defaults(1e-2f);
    nn_adam_update(p[k], m[k], v[k], g, n, &cfg, 1);
    nn_adam_update(p[k], m[k], v[k], g, n, &cfg, 2);
    nn_arena_polyak(t[k], p[k], n, 0.01f);
    nn_arena_scale(m[k], n, 0.5f);
    norm[k] = nn_arena_norm(p[k], n);
    nn_arena_zero(v[k] + 5, n - 10);
  }
  nn_set_threads(1);
  TH_CHECK(memcmp(p[0], p[1], n * sizeof(float)) == 0);
  TH_CHECK(memcmp(m[0], m[1], n * sizeof(float)) == 0);
  TH_CHECK(memcmp(v[0], v[1], n * sizeof(float)) == 0);
  TH_CHECK(memcmp(t[0], t[1], n * sizeof(float)) == 0);
  TH_CHECK(v[1][4] != 0.0f && v[1][5] == 0.0f && v[1][n - 6] == 0.0f && v[1][n - 5] != 0.0f);
  TH_CHECK_NEAR(norm[1], norm[0], 1e-12 * norm[0]);
  /* and the norm is the norm */
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)p[0][i] * p[0][i];
  TH_CHECK_NEAR(norm[0], sqrt(s), 1e-9 * norm[0]);
  for (int k = 0; k < 2; k++) free(p[k]), free(m[k]), free(v[k]), free(t[k]);
  free(g);
}

/* A backward with NN_GRADS_SET writes what zero-grad + an accumulating backward write, from any
 * stale grads, for every team size: the ensemble (LayerNorm, out 1) and the actor (dropout, tanh). */
static void test_grads_set(void) {
  nn_mlp_spec cs = critic_spec(), as = actor_spec();
  for (int t = 1; t <= 3; t++) {
    nn_set_threads(t);
    nn_ens ens;
    nn_mlp act;
    rng init, data, d1, d2;
    rng_seed(&init, 8, "test", 0, "init");
    rng_seed(&data, 9, "test", 0, "data");
    TH_CHECK_EQ_INT(nn_ens_init(&ens, 3, &cs, &init), IB_OK);
    TH_CHECK_EQ_INT(nn_mlp_init(&act, &as, &init), IB_OK);
    const int B = 77;
    float *x = ib_xaligned(sizeof(float) * MAXB * 29), *dq = ib_xaligned(sizeof(float) * MAXB * 7);
    float *q = ib_xaligned(sizeof(float) * MAXB * 7);
    float *ref = malloc(sizeof(float) * ens.n_params), *aref = malloc(sizeof(float) * act.n_params);
    nt_fill(x, (size_t)B * 29, -1, 1, &data);
    nt_fill(dq, (size_t)B * 7, -1, 1, &data);
    nn_ens_forward(&ens, q, x, B, NULL, 3, 1, NULL);
    nn_ens_zero_grad(&ens);
    nn_ens_backward(&ens, NULL, dq, 1);
    memcpy(ref, ens.grads, sizeof(float) * ens.n_params);
    nt_fill(ens.grads, ens.n_params, -5, 5, &data); /* stale values a set must not keep */
    nn_ens_backward(&ens, NULL, dq, NN_GRADS_SET);
    TH_CHECK_MSG(memcmp(ref, ens.grads, sizeof(float) * ens.n_params) == 0, "ensemble, %d thread(s)", t);
    rng_seed(&d1, 10, "test", 0, "dropout");
    d2 = d1;
    nn_mlp_forward(&act, NULL, x, B, 1, &d1);
    nn_mlp_zero_grad(&act);
    nn_mlp_backward(&act, NULL, dq, 1);
    memcpy(aref, act.grads, sizeof(float) * act.n_params);
    nt_fill(act.grads, act.n_params, -5, 5, &data);
    nn_mlp_forward(&act, NULL, x, B, 1, &d2);
    nn_mlp_backward(&act, NULL, dq, NN_GRADS_SET);
    TH_CHECK_MSG(memcmp(aref, act.grads, sizeof(float) * act.n_params) == 0, "actor, %d thread(s)", t);
    free(ref), free(aref), free(x), free(dq), free(q);
    nn_ens_free(&ens);
    nn_mlp_free(&act);
  }
  nn_set_threads(1);
}

/* Two threads each drive their own ensemble while the team has 2 members: whichever caller
 * finds the team busy runs alone; both must get the one-thread result. */
typedef struct conc_arg {
  ens_out out;
  int B;
} conc_arg;

static void *conc_main(void *p) {
  conc_arg *a = p;
  nn_mlp_spec s = critic_spec();
  nn_ens ens;
  rng init, data;
  rng_seed(&init, 3, "test", 0, "init");
  rng_seed(&data, 4, "test", 0, "data");
  if (nn_ens_init(&ens, 4, &s, &init) != IB_OK) return NULL;
  float *x = ib_xaligned(sizeof(float) * MAXB * 29), *dq = ib_xaligned(sizeof(float) * MAXB * 4);
  nt_fill(x, (size_t)a->B * 29, -1, 1, &data);
  nt_fill(dq, (size_t)a->B * 4, -1, 1, &data);
  nn_adam_cfg cfg = nn_adam_defaults(1e-3f);
  for (int rep = 0; rep < 20; rep++) { /* many calls, so the two threads really overlap */
    for (int step = 0; step < 2; step++) {
      nn_ens_zero_grad(&ens);
      nn_ens_forward(&ens, a->out.q, x, a->B, NULL, 4, 1, NULL);
      memset(a->out.dx, 0, sizeof a->out.dx);
      nn_ens_backward(&ens, a->out.dx, dq, 1);
      if (step == 0 && rep == 0) nn_ens_adam_step(&ens, &cfg);
    }
  }
  a->out.n = ens.n_params;
  a->out.grads = malloc(sizeof(float) * a->out.n);
  memcpy(a->out.grads, ens.grads, sizeof(float) * a->out.n);
  a->out.params = NULL;
  nn_ens_free(&ens);
  free(x);
  free(dq);
  return NULL;
}

static void test_concurrent_callers(void) {
  static ens_out ref;
  run_ens(&ref, 1, 64);
  nn_set_threads(2);
  static conc_arg a[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    memset(&a[i], 0, sizeof a[i]);
    a[i].B = 64;
    TH_CHECK(pthread_create(&th[i], NULL, conc_main, &a[i]) == 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  nn_set_threads(1);
  for (int i = 0; i < 2; i++) {
    TH_CHECK(a[i].out.grads != NULL);
    if (!a[i].out.grads) continue;
    TH_CHECK(th_allclose("concurrent q", a[i].out.q, ref.q, 64 * 4, 1e-6, 1e-5));
    TH_CHECK(th_allclose("concurrent grads", a[i].out.grads, ref.grads, ref.n, 1e-6, 1e-4));
    free(a[i].out.grads);
  }
  ens_out_free(&ref);
}

/* A forked child computes with a one-member team instead of waiting for workers it lacks. */
static void test_fork_child(void) {
  static ens_out ref;
  run_ens(&ref, 1, 64);
  nn_set_threads(2);
  pid_t pid = fork();
  TH_CHECK(pid >= 0);
  if (pid == 0) {
    alarm(60); /* a hang fails the test instead of blocking it */
    static ens_out got;
    run_ens(&got, 2, 64); /* nn_set_threads(2) in the child starts its own workers */
    int ok = th_allclose("forked child q", got.q, ref.q, 64 * 4, 1e-6, 1e-5);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  TH_CHECK(waitpid(pid, &st, 0) == pid);
  TH_CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  nn_set_threads(1);
  ens_out_free(&ref);
}

static const th_case cases[] = {
    {"ensemble: team = one thread", test_ensemble_team},
    {"actor: team = one thread", test_actor_team},
    {"arena passes: team = one thread", test_arena_team},
    {"grads set = zero + accumulate", test_grads_set},
    {"concurrent callers", test_concurrent_callers},
    {"forked child", test_fork_child},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
