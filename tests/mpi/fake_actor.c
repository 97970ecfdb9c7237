/* fake_actor.c: a stand-in actor for the learner end-to-end test (tests/mpi/learner_e2e.sh).
 * It does what an actor does on the wire, without an environment: it polls ibrl.Params for the
 * newest weight blob, checks the blob's header and CRC (wblob.h, the actor's side of the
 * contract), and streams random online transitions stamped with that weight_version into the
 * replay at a fixed rate, so the learner sees real staleness and the replay's rate limiter has
 * inserts to pace the learner against.
 *
 * usage: fake_actor --replay HOST:PORT --obs-dim N --act-dim N --items N [--rate ITEMS_PER_S]
 *                   [--actor-id K] [--seconds S]
 * Exit: 0 done (prints "fake_actor: inserted N items, weight versions A..B, K blobs checked"),
 * 1 a replay or blob error, 2 bad usage. Bounded by --seconds (default 60). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ib.h"
#include "params_client.h"
#include "replay_client.h"
#include "rng.h"
#include "wblob.h"

static int blob_check(const pc_blob *b) {
  wblob_header h;
  int rc = wblob_header_read(&h, b->data, b->len);
  if (rc != IB_OK) return rc;
  const float *payload = (const float *)(b->data + WBLOB_HEADER_BYTES);
  if (ib_crc32(0, payload, h.n_floats * sizeof(float)) != h.crc)
    return ib_fail(IB_ECHECKSUM, "blob version %llu: CRC mismatch", (unsigned long long)h.weight_version);
  if (h.weight_version != b->version)
    return ib_fail(IB_EMISMATCH, "blob says version %llu, Params says %llu", (unsigned long long)h.weight_version,
                   (unsigned long long)b->version);
  if (ib_first_nonfinite(payload, h.n_floats) >= 0) return ib_fail(IB_ENONFINITE, "blob has non-finite weights");
  return IB_OK;
}

int main(int argc, char **argv) {
  const char *replay = NULL;
  int obs = 0, act = 0, items = 0, actor_id = 1;
  double rate = 200, seconds = 60;
  static const struct option o[] = {{"replay", 1, NULL, 'r'}, {"obs-dim", 1, NULL, 'o'}, {"act-dim", 1, NULL, 'a'},
                                    {"items", 1, NULL, 'n'},  {"rate", 1, NULL, 't'},    {"actor-id", 1, NULL, 'i'},
                                    {"seconds", 1, NULL, 's'}, {"help", 0, NULL, 'h'},   {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
    switch (c) {
    case 'r': replay = optarg; break;
    case 'o': obs = atoi(optarg); break;
    case 'a': act = atoi(optarg); break;
    case 'n': items = atoi(optarg); break;
    case 't': rate = atof(optarg); break;
    case 'i': actor_id = atoi(optarg); break;
    case 's': seconds = atof(optarg); break;
    case 'h': printf("usage: fake_actor --replay HOST:PORT --obs-dim N --act-dim N --items N [--rate R] [--actor-id K] [--seconds S]\n"); return 0;
    default: fprintf(stderr, "fake_actor: bad option (see --help)\n"); return 2;
    }
  }
  if (!replay || obs <= 0 || act <= 0 || items <= 0 || rate <= 0) {
    fprintf(stderr, "fake_actor: need --replay, --obs-dim, --act-dim, --items > 0 and --rate > 0\n");
    return 2;
  }
  rc_opts ro = {0};
  ro.shards = replay;
  ro.seed = (uint64_t)actor_id;
  rc_client *cl = NULL;
  if (rc_client_open(&cl, &ro) != IB_OK) {
    fprintf(stderr, "fake_actor: %s\n", ib_errmsg());
    return 1;
  }
  rc_writer *w = NULL;
  if (rc_writer_open(&w, cl, "online", (uint32_t)actor_id, 0, 0) != IB_OK) {
    fprintf(stderr, "fake_actor: %s\n", ib_errmsg());
    rc_client_close(cl);
    return 1;
  }
  enum { CHUNK = 16 };
  rc_batch b;
  rc_batch_init(&b, CHUNK, obs, act);
  pc_blob blob = {0};
  rng r;
  rng_seed(&r, 1, "fake-actor", actor_id, "data");
  uint64_t vmin = 0, vmax = 0;
  int checked = 0, done = 0, code = 0;
  double t0 = ib_now_s();
  while (done < items && ib_now_s() - t0 < seconds) {
    int got = pc_get_if_newer(cl, 0, blob.version, 0, &blob, NULL);
    if (got < 0 && got != IB_EUNAVAIL && got != IB_ETIMEDOUT) {
      fprintf(stderr, "fake_actor: params: %s\n", ib_errmsg());
      code = 1;
      break;
    }
    if (got == 1) {
      if (blob_check(&blob) != IB_OK) {
        fprintf(stderr, "fake_actor: bad weight blob: %s\n", ib_errmsg());
        code = 1;
        break;
      }
      checked++;
      printf("fake_actor: checked blob version %llu (%zu bytes)\n", (unsigned long long)blob.version, blob.len);
      fflush(stdout);
      if (!vmin) vmin = blob.version;
      vmax = blob.version;
    }
    b.n = IB_MIN(CHUNK, items - done);
    for (int i = 0; i < b.n; i++) {
      for (int j = 0; j < obs; j++) b.obs[i * obs + j] = rng_normal(&r), b.next_obs[i * obs + j] = rng_normal(&r);
      for (int j = 0; j < act; j++) b.action[i * act + j] = 2 * rng_uniform(&r) - 1;
      b.reward[i] = rng_uniform(&r) < 0.1f;
      b.discount[i] = 0.97f;
      b.proposer[i] = rng_uniform(&r) < 0.5f ? RC_PROPOSER_IL : RC_PROPOSER_RL;
      b.episode_end[i] = b.episode_success[i] = 0;
      b.weight_version[i] = blob.version;
    }
    int rc = rc_writer_write(w, &b);
    if (rc == IB_OK) rc = rc_writer_flush(w, 2000);
    if (rc == IB_OK) done += b.n;
    /* The rate limiter may hold inserts (the learner is behind): that is normal, try again. */
    else if (rc != IB_ETIMEDOUT && rc != IB_EUNAVAIL && rc != IB_EFULL) {
      fprintf(stderr, "fake_actor: insert: %s\n", ib_errmsg());
      code = 1;
      break;
    }
    double ahead = done / rate - (ib_now_s() - t0);
    if (ahead > 0) {
      struct timespec ts = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
      nanosleep(&ts, NULL);
    }
  }
  printf("fake_actor: inserted %d items, weight versions %llu..%llu, %d blobs checked\n", done,
         (unsigned long long)vmin, (unsigned long long)vmax, checked);
  rc_writer_close(w);
  rc_batch_free(&b);
  pc_blob_free(&blob);
  rc_client_close(cl);
  return code;
}
