/* env_mw.h: the four Meta-World v2 tasks of the IBRL paper on MuJoCo 2.2.2 (assembly, boxclose,
 * coffeepush, stickpull), state-based. The registry (env.c) calls env_mw_create for names of
 * the form "metaworld/<task>". Facts: shared/docs/mujoco-tasks.md. */
#ifndef IB_ENV_MW_H
#define IB_ENV_MW_H

#include "env.h"

/* `task` is the part after "metaworld/". Returns IB_ENOTFOUND for an unknown task, IB_EIO with
 * a HINT naming IBRL_METAWORLD_ASSETS when the asset folder or a model file is missing. */
int env_mw_create(const char *task, const env_config *cfg, env **out);

/* The Meta-World task names without the prefix, NULL-terminated. */
const char *const *env_mw_tasks(void);

/* The asset folder that env_mw_create would use for `cfg` (cfg->metaworld_assets, else
 * $IBRL_METAWORLD_ASSETS, else the build default), and whether it exists. Tests use this to
 * skip with a message when the folder is absent. */
const char *env_mw_assets_dir(const env_config *cfg);
int env_mw_assets_present(const env_config *cfg);

#endif /* IB_ENV_MW_H */
