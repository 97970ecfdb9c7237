/* demo_internal.h (private to common/demo): what the reader and the writer share: silencing
 * HDF5's error stack around our calls, and the per-episode validation rules (so the writer
 * refuses exactly what the reader would reject). */
#ifndef IB_DEMO_INTERNAL_H
#define IB_DEMO_INTERNAL_H

#include <hdf5.h>

#include "demo.h"

/* HDF5 prints its error stack on every failed call; we check before we call and report one
 * message ourselves, so the stack is switched off around our calls and restored after. */
typedef struct demo__quiet {
  H5E_auto2_t fn;
  void *data;
} demo__quiet;

demo__quiet demo__quiet_on(void);
void demo__quiet_off(demo__quiet q);

/* Checks one episode: finite obs, actions and rewards; actions in [-1, 1]. `what` (the file)
 * starts the message. Returns IB_OK, IB_ENONFINITE or IB_EINVAL naming demo, row and column. */
int demo__validate_episode(const demo_episode *e, int obs_dim, int act_dim, const char *what);

#endif /* IB_DEMO_INTERNAL_H */
