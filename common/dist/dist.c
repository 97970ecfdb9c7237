/* dist.c: MPI wrappers for the learner group.
 *
 * Design. MPI_COMM_WORLD is the learner group; we never split it. Errors are switched to
 * MPI_ERRORS_RETURN at init so a failing call becomes an IB_EIO status with MPI's text rather
 * than an abort deep inside the library (a rank that dies still makes the others fail or hang
 * inside MPI; mpirun's --timeout and the launcher's liveness checks are the backstop for that).
 *
 * Identical results on every rank: the averaged gradient must be bit-identical everywhere or
 * the replicas drift apart. MPI_Allreduce with MPI_SUM on floats is computed once per element
 * position by Open MPI's algorithms and then distributed (or computed symmetrically: a+b and
 * b+a are the same float), and the division by the rank count is one IEEE operation done the
 * same way on every rank. The learner still verifies this on a period with
 * dist_check_same_u32 over the arena checksums, because the MPI standard only recommends, not
 * requires, that reductions be bitwise identical across ranks.
 *
 * Counts: MPI takes int counts; arenas larger than INT_MAX floats are sent in slices (not
 * reached by our networks, but it keeps the wrapper honest). */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>

#include "ib.h"

static int g_active;
static int g_rank, g_size;
static dist_stats g_stats;

/* Turns an MPI return code into IB_OK / IB_EIO with MPI's message. */
static int mpi_status(int rc, const char *call) {
  if (rc == MPI_SUCCESS) return IB_OK;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", rc);
  return ib_fail(IB_EIO, "%s failed on rank %d of %d: %s (HINT: did another rank die? check its log and the mpirun output)",
                 call, g_rank, g_size, text);
}

int dist_init(int *argc, char ***argv) {
  IB_CHECK(!g_active);
  int provided = 0;
  int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS)
    return ib_fail(IB_EIO, "MPI_Init_thread failed (code %d) (HINT: run under mpirun; see shared/docs/deploy.md section 7)", rc);
  if (provided < MPI_THREAD_FUNNELED) {
    /* gRPC client threads never call MPI, so FUNNELED is all we need; a library that cannot
     * even promise that is unusable. */
    MPI_Finalize();
    return ib_fail(IB_EIO, "MPI provides thread level %d < MPI_THREAD_FUNNELED (HINT: use a threaded Open MPI build)", provided);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_active = 1;
  return IB_OK;
}

void dist_finalize(void) {
  if (!g_active) return;
  MPI_Finalize();
  g_active = 0;
}

int dist_active(void) { return g_active; }

int dist_rank(void) {
  IB_CHECK(g_active);
  return g_rank;
}

int dist_size(void) {
  IB_CHECK(g_active);
  return g_size;
}

int dist_allreduce_mean(float *x, size_t n) {
  IB_CHECK(g_active);
  IB_CHECK(x != NULL || n == 0);
  double t0 = ib_now_s();
  for (size_t off = 0; off < n;) {
    int count = (int)IB_MIN(n - off, (size_t)INT_MAX);
    int rc = mpi_status(MPI_Allreduce(MPI_IN_PLACE, x + off, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                        "MPI_Allreduce (gradient mean)");
    if (rc != IB_OK) return rc;
    off += (size_t)count;
  }
  if (g_size > 1) {
    const float k = (float)g_size;
    for (size_t i = 0; i < n; i++) x[i] /= k;
  }
  g_stats.allreduce_s += ib_now_s() - t0;
  g_stats.allreduce_calls++;
  g_stats.allreduce_bytes += (double)n * sizeof(float);
  return IB_OK;
}

static int allreduce_d(double *x, int n, MPI_Op op, const char *what) {
  IB_CHECK(g_active);
  IB_CHECK(n >= 0 && (x != NULL || n == 0));
  double t0 = ib_now_s();
  int rc = mpi_status(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, op, MPI_COMM_WORLD), what);
  g_stats.other_s += ib_now_s() - t0;
  return rc;
}

int dist_allreduce_sum_d(double *x, int n) { return allreduce_d(x, n, MPI_SUM, "MPI_Allreduce (sum)"); }
int dist_allreduce_max_d(double *x, int n) { return allreduce_d(x, n, MPI_MAX, "MPI_Allreduce (max)"); }

static int bcast(void *buf, size_t count, MPI_Datatype type, size_t elem, int root) {
  IB_CHECK(g_active);
  IB_CHECK(root >= 0 && root < g_size);
  IB_CHECK(buf != NULL || count == 0);
  double t0 = ib_now_s();
  for (size_t off = 0; off < count;) {
    int c = (int)IB_MIN(count - off, (size_t)INT_MAX);
    int rc = mpi_status(MPI_Bcast((char *)buf + off * elem, c, type, root, MPI_COMM_WORLD), "MPI_Bcast");
    if (rc != IB_OK) return rc;
    off += (size_t)c;
  }
  g_stats.bcast_s += ib_now_s() - t0;
  g_stats.bcast_calls++;
  return IB_OK;
}

int dist_bcast_f(float *x, size_t n, int root) { return bcast(x, n, MPI_FLOAT, sizeof(float), root); }
int dist_bcast_bytes(void *buf, size_t bytes, int root) { return bcast(buf, bytes, MPI_BYTE, 1, root); }

int dist_check_same_u32(uint32_t value, const char *what, int *first_bad) {
  IB_CHECK(g_active);
  if (first_bad) *first_bad = -1;
  double t0 = ib_now_s();
  /* Everyone gathers everything (a few bytes per rank), so every rank can name the culprit
   * and all ranks return the same status: no rank proceeds while another stops. */
  uint32_t *all = ib_xcalloc((size_t)g_size, sizeof *all);
  int rc = mpi_status(MPI_Allgather(&value, 1, MPI_UINT32_T, all, 1, MPI_UINT32_T, MPI_COMM_WORLD),
                      "MPI_Allgather (checksum)");
  g_stats.other_s += ib_now_s() - t0;
  if (rc != IB_OK) {
    free(all);
    return rc;
  }
  for (int r = 1; r < g_size; r++) {
    if (all[r] != all[0]) {
      if (first_bad) *first_bad = r;
      rc = ib_fail(IB_EMISMATCH,
                   "%s: rank %d has checksum 0x%08x but rank 0 has 0x%08x (HINT: the replicas diverged; "
                   "a shared random stream or a reduction is not identical across ranks)",
                   what, r, (unsigned)all[r], (unsigned)all[0]);
      break;
    }
  }
  free(all);
  return rc;
}

int dist_gather_bytes(void *all, const void *mine, size_t bytes, int root) {
  IB_CHECK(g_active);
  IB_CHECK(root >= 0 && root < g_size && bytes <= (size_t)INT_MAX && mine != NULL);
  IB_CHECK(g_rank != root || all != NULL);
  double t0 = ib_now_s();
  int rc = mpi_status(MPI_Gather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD),
                      "MPI_Gather");
  g_stats.other_s += ib_now_s() - t0;
  return rc;
}

int dist_barrier(void) {
  IB_CHECK(g_active);
  double t0 = ib_now_s();
  int rc = mpi_status(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  g_stats.other_s += ib_now_s() - t0;
  return rc;
}

void dist_stats_get(dist_stats *out) { *out = g_stats; }
void dist_stats_reset(void) {
  dist_stats z = {0};
  g_stats = z;
}
