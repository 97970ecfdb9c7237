/* agent_impl.h: internals shared by the agent_*.c files (not part of the API).
 *
 * The workspace is one aligned block carved at agent_init for max_batch rows (Bm); the critic
 * input buffer holds 2·Bm rows because both candidates of a proposal are scored in one
 * ensemble forward. Nothing in the update or acting paths allocates. */
#ifndef IB_AGENT_IMPL_H
#define IB_AGENT_IMPL_H

#include "agent.h"

/* Actions are clamped into the open interval, as the reference's TruncatedNormal. */
#define AGENT_ACT_LIMIT (1.0f - 1e-6f)

struct agent_ws {
  float *xin;    /* (2Bm, O+A) critic input rows [s | a] */
  float *dxin;   /* (2Bm, O+A) its gradient */
  float *q;      /* (2Bm, E)  ensemble outputs */
  float *q2;     /* (Bm, E)   outputs of the extra heads of the evaluation subset */
  float *qmin;   /* (2Bm) */
  int *argmin;   /* (2Bm) */
  float *dq;     /* (2Bm, E) */
  float *dqmin;  /* (2Bm) */
  float *a_rl;   /* (Bm, A) */
  float *a_il;   /* (Bm, A) */
  float *a_pi;   /* (Bm, A) actor output (TD3) or sample (SAC) */
  float *noise;  /* (Bm, A) */
  float *h;      /* (Bm, 2A) SAC head output copy */
  float *dh;     /* (Bm, 2A) */
  float *eps;    /* (Bm, A) */
  float *logp;   /* (Bm) */
  float *da;     /* (Bm, A) */
  float *v_rl, *v_il, *y; /* (Bm) */
  uint8_t *pick; /* (Bm) */
  /* last target compute */
  int heads_sel[NN_MAX_HEADS], heads_eval[NN_MAX_HEADS];
  int last_n, last_il, last_logp;
};

/* Writes xin rows [s_b | a_b] for b < n into dst (n, O+A). */
void agent__rows(float *dst, const float *s, const float *act, int n, int O, int A);
/* out = clamp(x + clip(std·N(0,1), ±clip), ±AGENT_ACT_LIMIT); clip <= 0 means unclipped. */
void agent__noisy(float *out, const float *x, size_t n, float std, float clip, rng *r);
/* Euclidean norm of x[0..n) for the per-update finiteness check: 16 independent float lanes
 * (vectorised, no reassociation needed) folded into a double per 4096-element block. Any NaN or
 * Inf in x makes the result non-finite. */
double agent__norm(const float *x, size_t n);
/* Returns 1 if the method uses an IL policy (IBRL, BC). */
int agent__uses_il(const agent *a);

#endif /* IB_AGENT_IMPL_H */
