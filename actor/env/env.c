/* env.c: the task registry and the thin dispatch layer of env.h.
 *
 * Design: a name table decides which constructor runs. "nav2d*" names go to nav2d.c (always
 * built in). "metaworld/<task>" names go to env_mw_create when the build found the Meta-World
 * sources (IB_HAVE_METAWORLD); otherwise they are still listed (so users see what exists) and
 * creating one fails with a hint. The dispatch functions check what every task would otherwise
 * have to check: NULL pointers are bugs (abort), a non-finite action is the world's fault
 * (a policy produced NaN) and returns IB_ENONFINITE, so no task ever integrates a NaN. */
#include "env.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ib.h"
#include "nav2d.h"
#ifdef IB_HAVE_METAWORLD
#include "env_mw.h"
#endif

static const char *const names[] = {
    "nav2d", "nav2d-hard", "metaworld/assembly", "metaworld/boxclose", "metaworld/coffeepush", "metaworld/stickpull", NULL,
};

const char *const *env_names(void) { return names; }

static int known(const char *name) {
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], name)) return 1;
  return 0;
}

int env_create(const char *name, const env_config *cfg, env **out) {
  IB_CHECK(out != NULL);
  *out = NULL;
  if (!name || !known(name)) {
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; names[i]; i++) len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", names[i]);
    return ib_fail(IB_ENOTFOUND, "unknown task '%s' (HINT: known tasks: %s)", name ? name : "(null)", list);
  }
  if (cfg && cfg->horizon < 0) return ib_fail(IB_EINVAL, "task %s: horizon %d is negative (HINT: 0 = the task default)", name, cfg->horizon);
  if (!strncmp(name, "nav2d", 5)) {
    nav2d_params p;
    int rc = nav2d_variant(&p, name);
    if (rc < 0) return rc;
    return nav2d_create(name, &p, cfg, out);
  }
#ifdef IB_HAVE_METAWORLD
  return env_mw_create(name + strlen("metaworld/"), cfg, out);
#else
  return ib_fail(IB_EUNAVAIL, "task %s: this build has no Meta-World support (HINT: the Meta-World sources actor/env/env_mw.c "
                 "were absent at configure time; re-run cmake once they exist)", name);
#endif
}

void env_destroy(env *e) {
  if (e) e->ops->destroy(e);
}

int env_reset(env *e, uint64_t seed, float *obs) {
  IB_CHECK(e != NULL && obs != NULL);
  return e->ops->reset(e, seed, obs);
}

int env_step(env *e, const float *action, float *obs, env_info *info) {
  IB_CHECK(e != NULL && action != NULL && obs != NULL && info != NULL);
  for (int i = 0; i < e->act_dim; i++)
    if (!isfinite(action[i]))
      return ib_fail(IB_ENONFINITE, "%s: action[%d] is %g (HINT: the policy produced a non-finite action)", e->name, i,
                     (double)action[i]);
  return e->ops->step(e, action, obs, info);
}

int env_expert(env *e, rng *r, float noise, float *action) {
  IB_CHECK(e != NULL && r != NULL && action != NULL);
  if (!(noise >= 0.0f) || !isfinite(noise))
    return ib_fail(IB_EINVAL, "%s: expert noise %g must be a finite number >= 0", e->name, (double)noise);
  if (!e->ops->expert) return ib_fail(IB_ESTATE, "%s has no scripted expert", e->name);
  return e->ops->expert(e, r, noise, action);
}
