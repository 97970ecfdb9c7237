/* tcfg.h: the settings of one single-process training run (ibrl-train) and of IL training
 * (ibrl-il): one flat struct, named presets, a flag table, and the JSON dump that becomes the
 * run directory's config.json, and the agent_config those settings imply (tcfg_agent_config).
 *
 * Precedence: built-in defaults < --preset < explicit flags. tcfg_preset_apply overwrites every
 * field a preset names; the binaries apply the preset first and the other flags after it, so a
 * flag always wins. tcfg_resolve fills the fields whose default depends on others (the demo
 * ratio of a method, the warm-up policy) and validates everything.
 *
 * Errors: a bad value returns IB_EINVAL with ib_errmsg() naming the setting, the value and a
 * HINT; an unknown preset or method returns IB_ENOTFOUND listing the known names. Pure data: no
 * allocation, no I/O except tcfg_write_json (IB_EIO naming the path). Not shared between
 * threads. */
#ifndef IB_TCFG_H
#define IB_TCFG_H

#include <stdint.h>
#include <stdio.h>

#include "agent.h"
#include "ilfile.h"

#define TCFG_STR 512

/* The methods of ibrl-train (the names). */
typedef enum tcfg_method {
  TCFG_IBRL = 0,         /* IL and RL proposals while acting and in the bootstrap */
  TCFG_RLPD = 1,         /* RL only, no IL policy, 50% demo batches, random warm-up */
  TCFG_RFT = 2,          /* BC-pretrained actor + Q-filtered BC loss */
  TCFG_BC = 3,           /* the IL policy alone (evaluation only, no RL) */
  TCFG_IBRL_NOACT = 4,   /* ablation: no actor proposal (act with RL only) */
  TCFG_IBRL_NOBOOT = 5,  /* ablation: no bootstrap proposal */
  TCFG_IBRL_NEITHER = 6, /* ablation: neither proposal */
} tcfg_method;

typedef struct tcfg {
  /* what and where */
  char task[TCFG_STR];     /* env registry name */
  char demos[TCFG_STR];    /* robomimic-style HDF5 demo file */
  char il[TCFG_STR];       /* IL policy checkpoint (ibrl-il train --out) */
  char out[TCFG_STR];      /* run directory */
  char preset[64];         /* preset applied ("" if none) */
  char obs_keys[TCFG_STR]; /* demo obs keys in order ("" = the file's order) */
  int method;              /* tcfg_method */
  int backbone;            /* 0 TD3, 1 SAC */
  uint64_t seed;
  long env_steps;          /* env steps of the RL phase (warm-up excluded, as the reference) */
  int max_demos;           /* demos loaded from the file, 0 = all */
  int horizon;             /* episode time limit in env steps, 0 = the task's */
  /* transitions */
  int chunk;               /* actions per chunk (k) */
  int n_stack;             /* frames per observation */
  int nstep;               /* chunk transitions per n-step return */
  float gamma;             /* per env step */
  /* replay */
  float demo_ratio;        /* demo share of every batch; <0 = the method's default (resolved) */
  long replay_capacity;    /* online transitions kept (FIFO) */
  int warmup_episodes;     /* online episodes rolled out before training (not counted) */
  /* learning */
  int batch;
  int update_every;        /* chunk transitions between learning steps (U) */
  int critic_updates;      /* critic updates per learning step (G), then 1 actor update */
  int actor_hidden, actor_layers;
  float actor_dropout;     /* <0 = the method's default (0.5 IBRL, 0 RLPD/RFT) */
  int critic_hidden, critic_layers, critic_heads;
  float lr, tau;
  float act_noise, target_noise, noise_clip;
  int soft;                /* 1 soft (Boltzmann) IBRL selection, 0 greedy */
  float beta;              /* soft selection temperature */
  float rft_bc_weight;     /* RFT actor BC loss weight (0.1) */
  long rft_pretrain_steps; /* RFT: BC pretraining steps of the RL actor */
  /* evaluation, logging, checkpoints */
  long eval_every;         /* env steps */
  int eval_episodes;
  long ckpt_every;         /* env steps (the checkpoint is taken at the next episode end) */
  long stop_after;         /* >0: stop at the first checkpoint at or after this many env steps
                              (simulates an interruption; tests use it with --resume) */
  int threads;             /* nn compute threads (nn_set_threads), 1..8 */
  int quiet;
  /* IL training (ibrl-il only; config.json records the loaded policy's meta instead) */
  int il_arch;             /* 0 BC, 1 chunk CVAE */
  long il_steps;
  int il_batch;
  float il_lr;
  int il_hidden, il_layers;
  float il_dropout;
  int il_latent;           /* CVAE latent size */
  float il_kl_weight;
  /* evaluation policy: 0 = the method's (ibrl: the IBRL hybrid, ibrl-noact/-neither and
     rlpd/rft: the RL actor, bc: the IL policy), else an agent_mode (AGENT_MODE_EVAL_IL, _RL,
     _IBRL, _GREEDY); checked against the method by tcfg_eval_mode */
  int eval_mode;
  /* precision of the nn library's matrix products (nn_matmul: NN_MATMUL_FP32 default,
     _BF16X3, _BF16, or _AUTO, which tcfg_resolve turns into bf16x3 or fp32 for this machine;
     paper-state asks for AUTO; nn_set_matmul) */
  int matmul;
} tcfg;

/* The agent_mode evaluations use for c's method and c->eval_mode, or IB_EINVAL naming the mode
 * and the method when they do not fit (the IL policy needs a method with one; a BC run has no RL
 * actor). For bc the result is AGENT_MODE_EVAL_IL. */
int tcfg_eval_mode(const tcfg *c);
/* Parses an --eval-mode value: "auto" (0), "il", "rl", "ibrl", "greedy" -> out. IB_OK, or
 * IB_EINVAL with a message listing the names. */
int tcfg_eval_mode_parse(int *out, const char *s);
/* "il" "rl" "ibrl" "greedy" for an eval agent_mode, "auto" for 0. */
const char *tcfg_eval_mode_name(int mode);

/* The built-in defaults (the nav2d-quick sizes without the preset's name). */
void tcfg_defaults(tcfg *c);

/* Applies preset `name` (overwrites the fields it names). IB_ENOTFOUND lists the presets. */
int tcfg_preset_apply(tcfg *c, const char *name);
/* The preset names, NULL-terminated, and one line describing each. */
const char *const *tcfg_preset_names(void);
const char *tcfg_preset_about(const char *name);

/* Method names <-> values. tcfg_method_parse returns the value or IB_ENOTFOUND (lists them). */
int tcfg_method_parse(const char *s);
const char *tcfg_method_name(int m);
/* 1 for the methods that need an IL policy (ibrl and its ablations, bc). */
int tcfg_method_uses_il(int m);

/* Fills method-dependent defaults and validates every field (IB_EINVAL naming it). */
int tcfg_resolve(tcfg *c);

/* Writes every field of c and the loaded IL policy as one JSON object to `path` (atomically:
 * path.tmp then rename). The IL policy is described from its checkpoint's meta `il` (NULL when
 * the run loaded none): "il_policy" is an object with the architecture, chunk, sizes, task and,
 * for a version-2 meta, the training record (train_steps, train_batch, train_lr, train_seed,
 * train_demos, train_max_demos; null for a version-1 meta that lacks them); "il_policy": null
 * when no policy was loaded. c's il_* fields (the IL training settings of ibrl-il) are not
 * written: a run does not train its IL policy, so they would describe a policy it never used. */
int tcfg_write_json(const tcfg *c, const ilfile_meta *il, const char *path);

/* The agent_config of a resolved run: method (ablation switches included), backbone, network
 * sizes, optimiser and noise settings of `c`, the dims of the task and the largest batch the
 * agent will see. `il` (NULL when the run has no IL policy) becomes ac.il, with its max_batch
 * set to `max_batch`, for the methods that use it (ibrl and its ablations, bc). The caller sets
 * what only it knows (acting_only, rank). Pure: no validation here (agent_init does it). */
void tcfg_agent_config(agent_config *out, const tcfg *c, const il_config *il, int obs_dim, int act_dim,
                       int max_batch);

/* ---- flag parsing helpers for the binaries: strict numbers with range checks ---- */
/* Each returns 0 or -1 after printing "<prog>: <flag> '<s>' ..." to stderr. */
int tcfg_parse_long(long *out, const char *s, long lo, long hi, const char *prog, const char *flag);
int tcfg_parse_int(int *out, const char *s, int lo, int hi, const char *prog, const char *flag);
int tcfg_parse_float(float *out, const char *s, float lo, float hi, const char *prog, const char *flag);
int tcfg_parse_u64(uint64_t *out, const char *s, const char *prog, const char *flag);
/* A matrix-product precision name (nn_matmul_parse: fp32, bf16x3, bf16, auto) into *out (an nn_matmul). */
int tcfg_parse_matmul(int *out, const char *s, const char *prog, const char *flag);
/* Copies s into a TCFG_STR field; -1 (with a message) if it is too long. */
int tcfg_set_str(char *dst, size_t cap, const char *s, const char *prog, const char *flag);

/* Writes a JSON string literal (quotes and escapes) to f. */
void tcfg_json_string(FILE *f, const char *s);

#endif /* IB_TCFG_H */
