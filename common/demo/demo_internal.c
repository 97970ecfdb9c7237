/* demo_internal.c: see demo_internal.h. */
#include "demo_internal.h"

#include <math.h>

#include "ib.h"

demo__quiet demo__quiet_on(void) {
  demo__quiet q;
  H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return q;
}

void demo__quiet_off(demo__quiet q) { H5Eset_auto2(H5E_DEFAULT, q.fn, q.data); }

int demo__validate_episode(const demo_episode *e, int obs_dim, int act_dim, const char *what) {
  for (int t = 0; t < e->T; t++) {
    const float *o = e->obs + (size_t)t * obs_dim;
    for (int j = 0; j < obs_dim; j++)
      if (!isfinite(o[j]))
        return ib_fail(IB_ENONFINITE, "%s: %s obs[%d][%d] is %g (HINT: clean the dataset; NaN/Inf poisons training)", what,
                       e->name, t, j, (double)o[j]);
    const float *a = e->actions + (size_t)t * act_dim;
    for (int j = 0; j < act_dim; j++) {
      if (!isfinite(a[j]))
        return ib_fail(IB_ENONFINITE, "%s: %s actions[%d][%d] is %g (HINT: clean the dataset; NaN/Inf poisons training)", what,
                       e->name, t, j, (double)a[j]);
      if (a[j] < -1.0f || a[j] > 1.0f)
        return ib_fail(IB_EINVAL, "%s: %s actions[%d][%d] = %g is outside [-1, 1] (HINT: normalise actions to [-1, 1], as robomimic does)",
                       what, e->name, t, j, (double)a[j]);
    }
    if (!isfinite(e->rewards[t]))
      return ib_fail(IB_ENONFINITE, "%s: %s rewards[%d] is %g", what, e->name, t, (double)e->rewards[t]);
  }
  return IB_OK;
}
