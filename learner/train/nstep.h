/* nstep.h: n-step returns over the chunk transitions of one stored episode.
 *
 * Transition j of an episode of T chunk transitions has an in-chunk discounted reward r_j and a
 * bootstrap discount d_j (gamma^steps, or 0 when it ended the episode; chunk.h). The n-step
 * item that starts at j chains up to n transitions:
 *   R_j = r_j + d_j r_{j+1} + d_j d_{j+1} r_{j+2} + ... (n terms),
 *   D_j = d_j d_{j+1} ... d_{j+n-1},
 * stopping early when a discount is 0 (terminal). A chain that runs past the end of the stored
 * episode without a terminal discount is treated as terminal (D = 0): IBRL does not bootstrap
 * the last n transitions of an episode (shared/docs/ibrl-reference.md section 5). Pure
 * arithmetic; no allocation; thread-safe. */
#ifndef IB_NSTEP_H
#define IB_NSTEP_H

/* Writes R_j and D_j, and returns the index of the chain's last transition (whose next_obs is
 * the item's next_obs). Preconditions (bugs abort): 0 <= j < T, n >= 1. */
int nstep_chain(float *R, float *D, const float *rew, const float *disc, int T, int j, int n);

#endif /* IB_NSTEP_H */
