/* ilfile.h: IL policy checkpoints as written by `ibrl-il train`: the policy's nets (il_save,
 * learner/agent/il.h) plus a small text file "<path>.meta" that records everything needed to
 * rebuild the policy and to use it on the right data: the architecture and sizes, the chunk
 * length and frame stack it was trained with, the per-frame and per-step dims, the task and the
 * demo obs keys in concatenation order.
 *
 * Version 2 adds how the policy was trained (steps, batch, learning rate, seed, demo file and
 * demo count), so a run that loads the policy can record it (config.json's il_policy).
 *
 * Meta format: one "key value" pair per line, first line "ibrl-il-meta 2" (or 1: the files
 * written before 22 Nov 2026, without the training record; they still load, with trained = 0).
 * The value is the rest of the line for "demos" (a path may hold spaces), one word otherwise.
 * Unknown keys are an error (a newer writer), missing keys too.
 *
 * Errors: IB_EIO (missing or unreadable file, naming the path with a HINT to run ibrl-il train),
 * IB_EPROTO (a malformed meta file: names the line), plus the il_load errors. One thread. */
#ifndef IB_ILFILE_H
#define IB_ILFILE_H

#include <stdint.h>

#include "il.h"

typedef struct ilfile_meta {
  il_config il;        /* kind, obs_dim (stacked), act_dim (chunk), layers, hidden, dropout, latent, kl */
  int frame_dim;       /* floats per single observation frame */
  int step_dim;        /* floats per single env action */
  int chunk;           /* k: act_dim == chunk * step_dim */
  int n_stack;         /* obs_dim == n_stack * frame_dim */
  char task[128];      /* the task the demos came from ("" if unknown) */
  char obs_keys[512];  /* comma-separated demo obs keys in order */
  /* How it was trained (version 2); all zero when trained == 0 (a version-1 file). */
  int trained;         /* 1: the fields below were recorded by ibrl-il train */
  long steps;          /* training steps taken */
  int batch;           /* rows per step */
  float lr;            /* Adam learning rate */
  uint64_t seed;       /* ibrl-il train --seed */
  int max_demos;       /* demos used from the file's start, 0 = all */
  char demos[512];     /* the demo file (absolute when ibrl-il could resolve it) */
} ilfile_meta;

/* Writes p with il_save to `path` and the meta to "<path>.meta" (version 2). m->trained must be 1
 * (a bug otherwise: a new file always carries its training record); a demos path holding a
 * newline is refused with IB_EINVAL. */
int ilfile_save(const il_policy *p, const ilfile_meta *m, const char *path);
/* Reads "<path>.meta" only. */
int ilfile_meta_read(ilfile_meta *m, const char *path);
/* Reads the meta, builds *p (il_init with the meta's config, max_batch `max_batch`) and loads
 * the weights. On error *p is freed/zeroed. */
int ilfile_load(il_policy *p, ilfile_meta *m, const char *path, int max_batch);

#endif /* IB_ILFILE_H */
