/* bench_lstep.c: cost of one data-parallel IBRL update, split into its parts, at a chosen net
 * size (default: the paper's state config: obs 69, act 7, 3 x 1024 actor and 5-head critic,
 * global batch 256). Not a test: run it by hand, e.g.
 *   mpirun -np 2 --bind-to none build/tests/bench_lstep [--hidden 1024 --layers 3 --heads 5
 *          --batch 256 --obs 69 --act 7 --updates 20]
 * Per critic update it times: local gradients (agent_critic_grads), the wait for the slowest
 * rank (a barrier: load imbalance, not communication), the allreduce-mean of the critic arena,
 * and the apply (Adam + EMA); then the same for the actor. Rank 0 prints the mean over the
 * timed updates of the per-update maximum over ranks, and the arena sizes. Synthetic data. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "dist.h"
#include "ib.h"
#include "lstep.h"
#include "rng.h"

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != IB_OK) {
    fprintf(stderr, "bench_lstep: %s\n", ib_errmsg());
    return 1;
  }
  int hidden = 1024, layers = 3, heads = 5, batch = 256, obs = 69, act = 7, updates = 20;
  static const struct option o[] = {{"hidden", 1, NULL, 'h'}, {"layers", 1, NULL, 'l'}, {"heads", 1, NULL, 'e'},
                                    {"batch", 1, NULL, 'b'},  {"obs", 1, NULL, 'o'},    {"act", 1, NULL, 'a'},
                                    {"updates", 1, NULL, 'u'}, {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
    int v = optarg ? atoi(optarg) : 0;
    switch (c) {
    case 'h': hidden = v; break;
    case 'l': layers = v; break;
    case 'e': heads = v; break;
    case 'b': batch = v; break;
    case 'o': obs = v; break;
    case 'a': act = v; break;
    case 'u': updates = v; break;
    default: fprintf(stderr, "bench_lstep: bad option\n"); dist_finalize(); return 2;
    }
  }
  int rank = dist_rank(), size = dist_size();
  if (batch % size || hidden < 1 || layers < 1 || heads < 2 || updates < 3) {
    if (rank == 0) fprintf(stderr, "bench_lstep: batch must split over the ranks; hidden, layers >= 1, heads >= 2, updates >= 3\n");
    dist_finalize();
    return 2;
  }
  int n = batch / size;
  agent_config cfg = agent_config_default(AGENT_RLPD, AGENT_TD3); /* no IL net: same update cost minus il(s') */
  cfg.obs_dim = obs;
  cfg.act_dim = act;
  cfg.actor_layers = cfg.critic_layers = layers;
  cfg.actor_hidden = cfg.critic_hidden = hidden;
  cfg.n_critics = heads;
  cfg.max_batch = n;
  agent a = {0};
  if (agent_init(&a, &cfg) != IB_OK) {
    fprintf(stderr, "bench_lstep: %s\n", ib_errmsg());
    dist_finalize();
    return 1;
  }
  lstep_streams_split(&a, 1, rank);
  float *x = ib_xmalloc(sizeof(float) * (size_t)n * (2 * obs + act + 2));
  rng r;
  rng_seed(&r, 1, "bench", rank, "data");
  for (size_t i = 0; i < (size_t)n * (2 * obs + act + 2); i++) x[i] = 0.5f * rng_normal(&r);
  agent_batch b = {x, x + (size_t)n * obs, x + (size_t)n * (obs + act), x + (size_t)n * (obs + act + 1),
                   x + (size_t)n * (obs + act + 2), n};
  for (int i = 0; i < n; i++) ((float *)b.discount)[i] = 0.97f;
  agent_arena ca = agent_arena_get(&a, AGENT_NET_CRITIC), aa = agent_arena_get(&a, AGENT_NET_ACTOR);
  enum { C_GRAD, C_WAIT, C_AR, C_APPLY, A_GRAD, A_WAIT, A_AR, A_APPLY, N_T };
  double sum[N_T] = {0};
  int timed = 0;
  for (int u = 0; u < updates; u++) {
    double t[N_T], t0 = ib_now_s();
    IB_CHECK(agent_critic_grads(&a, &b) == IB_OK);
    double t1 = ib_now_s();
    IB_CHECK(dist_barrier() == IB_OK);
    double t2 = ib_now_s();
    IB_CHECK(dist_allreduce_mean(ca.grads, ca.n) == IB_OK);
    double t3 = ib_now_s();
    agent_critic_apply(&a);
    double t4 = ib_now_s();
    IB_CHECK(agent_actor_grads(&a, &b, NULL) == IB_OK);
    double t5 = ib_now_s();
    IB_CHECK(dist_barrier() == IB_OK);
    double t6 = ib_now_s();
    IB_CHECK(dist_allreduce_mean(aa.grads, aa.n) == IB_OK);
    double t7 = ib_now_s();
    agent_actor_apply(&a);
    double t8 = ib_now_s();
    t[C_GRAD] = t1 - t0, t[C_WAIT] = t2 - t1, t[C_AR] = t3 - t2, t[C_APPLY] = t4 - t3;
    t[A_GRAD] = t5 - t4, t[A_WAIT] = t6 - t5, t[A_AR] = t7 - t6, t[A_APPLY] = t8 - t7;
    IB_CHECK(dist_allreduce_max_d(t, N_T) == IB_OK);
    if (u >= 2) { /* two warm-up updates */
      for (int k = 0; k < N_T; k++) sum[k] += t[k];
      timed++;
    }
  }
  int same = lstep_params_check(&a, NULL) == IB_OK;
  if (rank == 0) {
    printf("bench_lstep: %d ranks x %d rows, obs %d act %d, %d x %d nets, %d heads, %d timed updates, replicas %s\n", size, n,
           obs, act, layers, hidden, heads, timed, same ? "identical" : "DIFFER");
    printf("  critic arena %.2f MB, actor arena %.2f MB\n", ca.n * 4e-6, aa.n * 4e-6);
    printf("  per update (ms, max over ranks): critic grads %.2f  wait %.2f  allreduce %.2f  apply %.2f | "
           "actor grads %.2f  wait %.2f  allreduce %.2f  apply %.2f\n",
           1e3 * sum[C_GRAD] / timed, 1e3 * sum[C_WAIT] / timed, 1e3 * sum[C_AR] / timed, 1e3 * sum[C_APPLY] / timed,
           1e3 * sum[A_GRAD] / timed, 1e3 * sum[A_WAIT] / timed, 1e3 * sum[A_AR] / timed, 1e3 * sum[A_APPLY] / timed);
    printf("  allreduce share of a critic+actor update: %.1f %%\n",
           100.0 * (sum[C_AR] + sum[A_AR]) /
               (sum[C_GRAD] + sum[C_AR] + sum[C_APPLY] + sum[A_GRAD] + sum[A_AR] + sum[A_APPLY]));
  }
  free(x);
  agent_free(&a);
  dist_finalize();
  return same ? 0 : 1;
}
