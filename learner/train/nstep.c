/* nstep.c: the n-step chain of nstep.h. The sum runs in float in chain order, so the online
 * items and the demo items (built by the same recurrence in trainer.c) round identically. */
#include "nstep.h"

#include "ib.h"

int nstep_chain(float *R, float *D, const float *rew, const float *disc, int T, int j, int n) {
  IB_CHECK(j >= 0 && j < T && n >= 1);
  float r = rew[j], d = disc[j];
  int last = j;
  for (int i = 1; i < n && d > 0; i++) {
    if (j + i >= T) { /* ran off the stored episode: terminal */
      d = 0;
      break;
    }
    r += d * rew[j + i];
    d *= disc[j + i];
    last = j + i;
  }
  *R = r;
  *D = d;
  return last;
}
