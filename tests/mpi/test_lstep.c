/* test_lstep.c (label mpi, run under mpiexec -n 2): the data-parallel IBRL update.
 *  - after N distributed updates on DIFFERENT data per rank, every rank holds bit-identical
 *    arenas (memcmp against rank 0's broadcast copy), although the per-rank losses differed;
 *  - 2 ranks x 128 rows equal 1 rank x 256 rows within float tolerance (per-row randomness off),
 *    and the same tolerance tells a 128-row update apart (the check can fail);
 *  - a non-finite loss on one rank, a stop request or a missing batch on one rank make every
 *    rank skip the update together (nothing applied, the culprit named).
 * Data are synthetic and fed in process (no gRPC): the update code is callable on any batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "dist.h"
#include "ib.h"
#include "lstate.h"
#include "lstep.h"
#include "rng.h"
#include "th.h"

#define OBS 6
#define ACT 2

typedef struct data {
  float *obs, *act, *rew, *disc, *next;
  int n;
} data;

static void data_make(data *d, int n, uint64_t seed, int stream) {
  rng r;
  rng_seed(&r, seed, "test-data", stream, "rows");
  d->n = n;
  d->obs = ib_xmalloc(sizeof(float) * (size_t)n * OBS);
  d->next = ib_xmalloc(sizeof(float) * (size_t)n * OBS);
  d->act = ib_xmalloc(sizeof(float) * (size_t)n * ACT);
  d->rew = ib_xmalloc(sizeof(float) * (size_t)n);
  d->disc = ib_xmalloc(sizeof(float) * (size_t)n);
  for (int i = 0; i < n * OBS; i++) d->obs[i] = rng_normal(&r), d->next[i] = rng_normal(&r);
  for (int i = 0; i < n * ACT; i++) d->act[i] = 2.0f * rng_uniform(&r) - 1.0f;
  for (int i = 0; i < n; i++) {
    d->rew[i] = rng_uniform(&r) < 0.3f ? 1.0f : 0.0f;
    d->disc[i] = rng_uniform(&r) < 0.1f ? 0.0f : 0.97f;
  }
}

static void data_free(data *d) {
  free(d->obs), free(d->act), free(d->rew), free(d->disc), free(d->next);
}

/* A view of rows [r0, r0 + n). */
static agent_batch view(const data *d, int r0, int n) {
  agent_batch b = {d->obs + (size_t)r0 * OBS, d->act + (size_t)r0 * ACT, d->rew + r0, d->disc + r0,
                   d->next + (size_t)r0 * OBS, n};
  return b;
}

/* A small IBRL agent (TD3) with a random frozen IL policy, identical on every rank. `noisy` 0
 * switches off all per-row randomness (dropout, smoothing noise, soft selection). */
static int make_agent(agent *a, il_policy *il, int max_batch, int noisy) {
  agent_config c = agent_config_default(AGENT_IBRL, AGENT_TD3);
  c.obs_dim = OBS;
  c.act_dim = ACT;
  c.actor_layers = c.critic_layers = 2;
  c.actor_hidden = c.critic_hidden = 32;
  c.max_batch = max_batch;
  c.lr_actor = c.lr_critic = 1e-3f;
  c.seed = 11;
  c.rank = 0; /* shared streams; lstep_streams_split reseeds the per-row ones */
  if (!noisy) {
    c.actor_dropout = 0.0f;
    c.target_noise = 0.0f;
    c.act_select = c.boot_select = AGENT_SELECT_GREEDY;
  }
  il_config ic = il_config_default();
  ic.obs_dim = OBS;
  ic.act_dim = ACT;
  ic.n_layers = 2;
  ic.hidden = 16;
  ic.max_batch = max_batch;
  ic.seed = 5;
  c.il = ic;
  int rc = il_init(il, &ic);
  if (rc != IB_OK) return rc;
  rc = agent_init(a, &c);
  if (rc != IB_OK) return rc;
  return agent_il_set(a, il);
}

static const agent_net nets[] = {AGENT_NET_ACTOR, AGENT_NET_ACTOR_TARGET, AGENT_NET_CRITIC, AGENT_NET_CRITIC_TARGET};
static const char *net_names[] = {"actor", "actor_target", "critic", "critic_target"};

/* ---- identical weights after N updates on different data ---- */

static void test_identical(void) {
  int rank = dist_rank(), size = dist_size();
  agent a = {0};
  il_policy il = {0};
  TH_CHECK_EQ_INT(make_agent(&a, &il, 64, 1), IB_OK);
  lstep_streams_split(&a, 11, rank);
  TH_CHECK_EQ_INT(lstep_params_bcast(&a), IB_OK);
  data d;
  data_make(&d, 64 * 8, 99, rank); /* each rank its own rows */
  const int G = 2, N = 16;
  double first_loss = 0.0;
  for (int u = 0; u < N; u++) {
    agent_batch b = view(&d, (u % 8) * 64, 64);
    lstep_ctl ctl = {0, 0};
    TH_CHECK_EQ_INT(lstep_critic(&a, &b, &ctl), IB_OK);
    if (u == 0) first_loss = a.metrics.critic_loss;
    if (u % G == G - 1) {
      lstep_ctl ctl2 = {0, 0};
      TH_CHECK_EQ_INT(lstep_actor(&a, &b, NULL, &ctl2), IB_OK);
    }
  }
  /* The ranks saw different rows: their local losses differ, so identity is the allreduce's
   * doing, not a coincidence of identical inputs. */
  double losses[64] = {0};
  if (size <= 64) {
    losses[rank] = first_loss;
    TH_CHECK_EQ_INT(dist_allreduce_sum_d(losses, size), IB_OK);
    for (int r = 1; r < size; r++) TH_CHECK_MSG(losses[r] != losses[0], "rank %d saw the same loss as rank 0", r);
  }
  for (size_t i = 0; i < IB_ARRAY_LEN(nets); i++) {
    agent_arena ar = agent_arena_get(&a, nets[i]);
    float *copy = ib_xmalloc(ar.n * sizeof(float));
    memcpy(copy, ar.params, ar.n * sizeof(float));
    TH_CHECK_EQ_INT(dist_bcast_f(copy, ar.n, 0), IB_OK);
    TH_CHECK_MSG(memcmp(copy, ar.params, ar.n * sizeof(float)) == 0, "rank %d: %s differs from rank 0's", rank,
                 net_names[i]);
    free(copy);
  }
  TH_CHECK_EQ_INT(lstep_params_check(&a, NULL), IB_OK);
  TH_CHECK_EQ_INT(a.metrics.critic_updates, N);
  TH_CHECK_EQ_INT(a.metrics.actor_updates, N / G);
  data_free(&d);
  agent_free(&a);
  il_free(&il);
}

/* ---- N x B/N rows == 1 x B rows ---- */

static void test_equivalence(void) {
  int rank = dist_rank(), size = dist_size();
  const int B = 256;
  if (B % size != 0) {
    th_skip("256 rows do not split evenly over this many ranks");
    return;
  }
  const int share = B / size, K = 6;
  data d;
  data_make(&d, B * K, 7, 0); /* the same global batches on every rank */
  agent a = {0};
  il_policy il = {0};
  TH_CHECK_EQ_INT(make_agent(&a, &il, share, 0), IB_OK);
  lstep_streams_split(&a, 11, rank);
  for (int u = 0; u < K; u++) {
    agent_batch b = view(&d, u * B + rank * share, share);
    lstep_ctl ctl = {0, 0};
    TH_CHECK_EQ_INT(lstep_critic(&a, &b, &ctl), IB_OK);
    TH_CHECK_EQ_INT(lstep_actor(&a, &b, NULL, &ctl), IB_OK);
  }
  if (rank == 0) {
    /* One process, one agent, the whole 256-row batches. */
    agent s = {0}, h = {0};
    il_policy il1 = {0}, il2 = {0};
    TH_CHECK_EQ_INT(make_agent(&s, &il1, B, 0), IB_OK);
    TH_CHECK_EQ_INT(make_agent(&h, &il2, B, 0), IB_OK);
    for (int u = 0; u < K; u++) {
      agent_batch full = view(&d, u * B, B), half = view(&d, u * B, B / 2);
      TH_CHECK_EQ_INT(agent_critic_update(&s, &full), IB_OK);
      TH_CHECK_EQ_INT(agent_actor_update(&s, &full, NULL), IB_OK);
      TH_CHECK_EQ_INT(agent_critic_update(&h, &half), IB_OK);
      TH_CHECK_EQ_INT(agent_actor_update(&h, &half, NULL), IB_OK);
    }
    for (size_t i = 0; i < IB_ARRAY_LEN(nets); i++) {
      agent_arena x = agent_arena_get(&a, nets[i]), y = agent_arena_get(&s, nets[i]), z = agent_arena_get(&h, nets[i]);
      TH_CHECK_EQ_INT(x.n, y.n);
      TH_CHECK_MSG(th_allclose(net_names[i], x.params, y.params, x.n, 2e-6, 1e-4),
                   "%s: %d ranks x %d rows differ from 1 x %d rows", net_names[i], size, share, B);
      /* The tolerance is tight enough to see half the data missing (trained nets only). */
      if (size > 1 && (nets[i] == AGENT_NET_ACTOR || nets[i] == AGENT_NET_CRITIC)) {
        double worst = 0.0;
        for (size_t j = 0; j < z.n; j++) worst = fmax(worst, fabs((double)z.params[j] - y.params[j]) - 1e-4 * fabs(y.params[j]));
        TH_CHECK_MSG(worst > 2e-6, "%s: a 128-row update is within tolerance of the 256-row one (worst %g)", net_names[i], worst);
      }
    }
    agent_free(&s), agent_free(&h);
    il_free(&il1), il_free(&il2);
  }
  data_free(&d);
  agent_free(&a);
  il_free(&il);
}

/* ---- consensus: non-finite, stop, missing batch ---- */

static void test_consensus(void) {
  int rank = dist_rank(), size = dist_size();
  agent a = {0};
  il_policy il = {0};
  TH_CHECK_EQ_INT(make_agent(&a, &il, 32, 1), IB_OK);
  lstep_streams_split(&a, 11, rank);
  data d;
  data_make(&d, 32, 3, rank);
  agent_batch b = view(&d, 0, 32);
  int last = size - 1;
  uint32_t crc0 = lstep_params_crc(&a);

  /* NaN reward on the last rank. */
  float keep = d.rew[5];
  if (rank == last) d.rew[5] = NAN;
  lstep_ctl ctl = {0, 0};
  int rc = lstep_critic(&a, &b, &ctl);
  d.rew[5] = keep;
  TH_CHECK_EQ_INT(rc, IB_ENONFINITE);
  char want[32];
  snprintf(want, sizeof want, "rank %d", last);
  TH_CHECK_MSG(strstr(ib_errmsg(), want) != NULL, "message '%s' does not name %s", ib_errmsg(), want);
  TH_CHECK_MSG(lstep_params_crc(&a) == crc0, "weights changed after a non-finite update");
  TH_CHECK_EQ_INT(a.metrics.critic_updates, 0);

  /* Stop requested by the last rank only: everybody stops, nothing applied. */
  lstep_ctl c2 = {rank == last, 0};
  TH_CHECK_EQ_INT(lstep_critic(&a, &b, &c2), 1);
  TH_CHECK_EQ_INT(c2.stop, 1);
  lstep_ctl c3 = {rank == last, 0};
  TH_CHECK_EQ_INT(lstep_actor(&a, &b, NULL, &c3), 1);
  TH_CHECK_MSG(lstep_params_crc(&a) == crc0, "weights changed after a stopped update");

  /* The last rank has no batch. */
  lstep_ctl c4 = {0, rank == last};
  TH_CHECK_EQ_INT(lstep_critic(&a, rank == last ? NULL : &b, &c4), 1);
  TH_CHECK_EQ_INT(c4.no_batch, 1);
  TH_CHECK_MSG(lstep_params_crc(&a) == crc0, "weights changed after an update without a batch");

  /* And then a normal update still works and keeps the ranks identical. */
  lstep_ctl c5 = {0, 0};
  TH_CHECK_EQ_INT(lstep_critic(&a, &b, &c5), IB_OK);
  TH_CHECK_MSG(lstep_params_crc(&a) != crc0, "a normal update changed nothing");
  TH_CHECK_EQ_INT(lstep_params_check(&a, NULL), IB_OK);
  data_free(&d);
  agent_free(&a);
  il_free(&il);
}

/* ---- the checksum comparison detects a replica that drifted ---- */

static void test_drift_detected(void) {
  int rank = dist_rank(), size = dist_size();
  if (size < 2) {
    th_skip("needs 2 ranks");
    return;
  }
  agent a = {0};
  il_policy il = {0};
  TH_CHECK_EQ_INT(make_agent(&a, &il, 8, 1), IB_OK);
  if (rank == 1) a.critic.params[3] = nextafterf(a.critic.params[3], 1e9f); /* one ulp */
  TH_CHECK_EQ_INT(lstep_params_check(&a, NULL), IB_EMISMATCH);
  TH_CHECK_MSG(strstr(ib_errmsg(), "rank 1") != NULL, "message '%s' does not name rank 1", ib_errmsg());
  TH_CHECK_EQ_INT(lstep_params_bcast(&a), IB_OK); /* repaired from rank 0 */
  TH_CHECK_EQ_INT(lstep_params_check(&a, NULL), IB_OK);
  agent_free(&a);
  il_free(&il);
}

/* ---- checkpoint + resume continues bit-identically ---- */

/* K distributed updates (critic, and actor every 2nd) on rows of `d` from update u0 on. */
static void run_updates(agent *a, const data *d, int u0, int K) {
  for (int u = u0; u < u0 + K; u++) {
    agent_batch b = view(d, (u % 4) * 32, 32);
    lstep_ctl c = {0, 0};
    TH_CHECK_EQ_INT(lstep_critic(a, &b, &c), IB_OK);
    if (u % 2 == 1) TH_CHECK_EQ_INT(lstep_actor(a, &b, NULL, &c), IB_OK);
  }
}

static void test_resume_identical(void) {
  int rank = dist_rank();
  char path[512];
  /* Same path on every rank: rank 0's pid, broadcast. */
  int pid = (int)getpid();
  TH_CHECK_EQ_INT(dist_bcast_bytes(&pid, sizeof pid, 0), IB_OK);
  snprintf(path, sizeof path, "%s/test_lstep_%d.ckpt", IB_BINARY_DIR, pid);
  data d;
  data_make(&d, 128, 21, rank);
  agent a = {0}, r = {0};
  il_policy il = {0}, il2 = {0};
  TH_CHECK_EQ_INT(make_agent(&a, &il, 32, 1), IB_OK); /* dropout, noise, soft selection all on */
  lstep_streams_split(&a, 11, rank);
  run_updates(&a, &d, 0, 6);
  /* The learner's checkpoint: agent_save on rank 0 + every rank's per-row streams. */
  rng mine[LSTATE_STREAMS];
  lstate_streams_get(&a, mine);
  if (rank == 0) TH_CHECK_EQ_INT(agent_save(&a, path), IB_OK);
  TH_CHECK_EQ_INT(dist_barrier(), IB_OK);
  run_updates(&a, &d, 6, 6);
  uint32_t straight = lstep_params_crc(&a);
  /* A new process would: build the agent, load the file, take its streams back. */
  TH_CHECK_EQ_INT(make_agent(&r, &il2, 32, 1), IB_OK);
  lstep_streams_split(&r, 11, rank);
  TH_CHECK_EQ_INT(agent_load(&r, path), IB_OK);
  lstate_streams_set(&r, mine);
  run_updates(&r, &d, 6, 6);
  TH_CHECK_MSG(lstep_params_crc(&r) == straight, "rank %d: resumed weights differ from the uninterrupted run", rank);
  TH_CHECK_MSG(memcmp(r.critic.params, a.critic.params, a.critic.n_params * sizeof(float)) == 0, "critic differs");
  TH_CHECK_EQ_INT(r.metrics.critic_updates, a.metrics.critic_updates);
  /* Without the per-rank streams (only rank 0's, from the agent file) rank 1 would diverge
   * from the uninterrupted run: the streams are needed. */
  if (dist_size() > 1) {
    agent w = {0};
    il_policy il3 = {0};
    TH_CHECK_EQ_INT(make_agent(&w, &il3, 32, 1), IB_OK);
    TH_CHECK_EQ_INT(agent_load(&w, path), IB_OK); /* rank 0's streams on every rank */
    run_updates(&w, &d, 6, 6);
    double differs = lstep_params_crc(&w) != straight;
    TH_CHECK_EQ_INT(dist_allreduce_max_d(&differs, 1), IB_OK);
    TH_CHECK_MSG(differs > 0, "resuming without the per-rank streams gave the same weights (test cannot fail)");
    agent_free(&w);
    il_free(&il3);
  }
  TH_CHECK_EQ_INT(dist_barrier(), IB_OK);
  if (rank == 0) unlink(path);
  data_free(&d);
  agent_free(&a), agent_free(&r);
  il_free(&il), il_free(&il2);
}

static const th_case cases[] = {
    {"identical weights after N updates", test_identical},
    {"2x128 equals 1x256", test_equivalence},
    {"consensus on nan, stop, no batch", test_consensus},
    {"drifted replica is named", test_drift_detected},
    {"resume continues bit-identically", test_resume_identical},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != IB_OK) {
    fprintf(stderr, "test_lstep: %s\n", ib_errmsg());
    return 1;
  }
  int rc = th_main(argc, argv, cases);
  /* Every rank's verdict counts: mpiexec fails if any rank exits nonzero. */
  dist_finalize();
  return rc;
}
