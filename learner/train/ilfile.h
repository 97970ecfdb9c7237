/* ilfile.h: IL policy checkpoints as written by `ibrl-il train`: the policy's nets (il_save,
 * learner/agent/il.h) plus a small text file "<path>.meta" that records everything needed to
 * rebuild the policy and to use it on the right data: the architecture and sizes, the chunk
 * length and frame stack it was trained with, the per-frame and per-step dims, the task and the
 * demo obs keys in concatenation order.
 *
 * Meta format: one "key value" pair per line, first line "ibrl-il-meta 1". Unknown keys are an
 * error (a newer writer), missing keys too.
 *
 * Errors: IB_EIO (missing or unreadable file, naming the path with a HINT to run ibrl-il train),
 * IB_EPROTO (a malformed meta file: names the line), plus the il_load errors. One thread. */
#ifndef IB_ILFILE_H
#define IB_ILFILE_H

#include "il.h"

typedef struct ilfile_meta {
  il_config il;        /* kind, obs_dim (stacked), act_dim (chunk), layers, hidden, dropout, latent, kl */
  int frame_dim;       /* floats per single observation frame */
  int step_dim;        /* floats per single env action */
  int chunk;           /* k: act_dim == chunk * step_dim */
  int n_stack;         /* obs_dim == n_stack * frame_dim */
  char task[128];      /* the task the demos came from ("" if unknown) */
  char obs_keys[512];  /* comma-separated demo obs keys in order */
} ilfile_meta;

/* Writes p with il_save to `path` and the meta to "<path>.meta". */
int ilfile_save(const il_policy *p, const ilfile_meta *m, const char *path);
/* Reads "<path>.meta" only. */
int ilfile_meta_read(ilfile_meta *m, const char *path);
/* Reads the meta, builds *p (il_init with the meta's config, max_batch `max_batch`) and loads
 * the weights. On error *p is freed/zeroed. */
int ilfile_load(il_policy *p, ilfile_meta *m, const char *path, int max_batch);

#endif /* IB_ILFILE_H */
