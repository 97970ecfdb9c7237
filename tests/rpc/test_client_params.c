/* test_client_params.c: Params publish and get-if-newer through params_client.h against an
 * ibrl-replay child: a long poll with nothing published returns 0 after about its wait (not
 * before, not much after), a long poll returns as soon as another thread publishes (well before
 * its wait), blobs arrive byte-exact and the receive buffer is reused, stale versions are
 * refused with IB_ESTATE, and bad arguments are named. */
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ib.h"
#include "params_client.h"
#include "replay_client.h"
#include "rpc_testutil.h"
#include "th.h"

static rt_server srv;

typedef struct pub_arg {
  rc_client *c;
  int delay_ms;
  uint64_t version;
  const uint8_t *data;
  size_t len;
  int rc;
} pub_arg;

static void *publisher(void *p) {
  pub_arg *a = p;
  usleep((useconds_t)a->delay_ms * 1000);
  a->rc = pc_publish(a->c, 0, a->version, a->data, a->len);
  return NULL;
}

static void test_params(void) {
  static const char *const args[] = {"--obs-dim", "3", "--act-dim", "2", "--threads", "4", NULL};
  int code;
  if (rt_server_start(&srv, args, &code) != 0) {
    TH_CHECK_MSG(0, "ibrl-replay did not start (%d)", code);
    return;
  }
  rc_opts o = {0};
  o.shards = srv.target;
  o.deadline_ms = 3000;
  rc_client *c = NULL;
  TH_CHECK(rc_client_open(&c, &o) == IB_OK);
  pc_blob blob = {0};
  uint64_t stored = 99;

  /* Nothing published: a plain look and a 400 ms wait both say "nothing newer". */
  TH_CHECK_EQ_INT(pc_get_if_newer(c, 0, 0, 0, &blob, &stored), 0);
  TH_CHECK_EQ_INT(stored, 0);
  double t0 = ib_now_s();
  TH_CHECK_EQ_INT(pc_get_if_newer(c, 0, 0, 400, &blob, NULL), 0);
  double waited = ib_now_s() - t0;
  TH_CHECK_MSG(waited >= 0.35 && waited < 2.0, "waited %.3f s for a 400 ms poll", waited);

  /* Info before any publish: no version, no age, no publish time. */
  rc_shard_info *info = malloc(sizeof *info);
  TH_CHECK(rc_info_get(c, 0, info) == IB_OK);
  TH_CHECK_EQ_INT(info->params_version, 0);
  TH_CHECK_EQ_INT(info->params_published_unix_ms, 0);
  TH_CHECK(info->params_age_s == 0);

  /* A blob of 300 kB with a recognisable pattern. */
  size_t len = 300000;
  uint8_t *data = malloc(len);
  for (size_t i = 0; i < len; i++) data[i] = (uint8_t)(i * 131u + 7u);
  pub_arg pa = {c, 300, 1, data, len, -100};
  pthread_t th;
  IB_CHECK(pthread_create(&th, NULL, publisher, &pa) == 0);
  t0 = ib_now_s();
  int rc = pc_get_if_newer(c, 0, 0, 5000, &blob, NULL);
  waited = ib_now_s() - t0;
  pthread_join(th, NULL);
  TH_CHECK_MSG(pa.rc == IB_OK, "publish: %s", ib_errmsg());
  TH_CHECK_EQ_INT(rc, 1);
  TH_CHECK_MSG(waited >= 0.2 && waited < 2.5, "long poll returned after %.3f s (publish at 0.3 s)", waited);
  TH_CHECK_EQ_INT(blob.version, 1);
  TH_CHECK_EQ_INT(blob.len, len);
  TH_CHECK(blob.data != NULL && memcmp(blob.data, data, len) == 0);

  /* Already current: nothing newer, the blob is untouched. */
  TH_CHECK_EQ_INT(pc_get_if_newer(c, 0, 1, 0, &blob, &stored), 0);
  TH_CHECK_EQ_INT(stored, 1);
  TH_CHECK_EQ_INT(blob.version, 1);

  /* A smaller version 2 reuses the buffer. */
  uint8_t *before = blob.data;
  for (size_t i = 0; i < 1000; i++) data[i] = (uint8_t)(255 - i);
  TH_CHECK(pc_publish(c, 0, 2, data, 1000) == IB_OK);
  TH_CHECK_EQ_INT(pc_get_if_newer(c, 0, 1, 1000, &blob, NULL), 1);
  TH_CHECK_EQ_INT(blob.version, 2);
  TH_CHECK_EQ_INT(blob.len, 1000);
  TH_CHECK(blob.data == before);
  /* Info reports the publish: version, size, an age that grows, the wall-clock time. */
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  double pub_wall = (double)wall.tv_sec + wall.tv_nsec * 1e-9;
  usleep(300000);
  TH_CHECK(rc_info_get(c, 0, info) == IB_OK);
  TH_CHECK_EQ_INT(info->params_version, 2);
  TH_CHECK_EQ_INT(info->params_bytes, 1000);
  TH_CHECK_MSG(info->params_age_s >= 0.25 && info->params_age_s < 5.0, "params age %.3f s, published ~0.3 s ago",
               info->params_age_s);
  TH_CHECK_MSG(fabs((double)info->params_published_unix_ms * 1e-3 - pub_wall) < 5.0,
               "published at unix %.3f, the publish ended at %.3f", (double)info->params_published_unix_ms * 1e-3,
               pub_wall);
  free(info);
  TH_CHECK(memcmp(blob.data, data, 1000) == 0);

  /* Stale and reserved versions, bad shard. */
  TH_CHECK_EQ_INT(pc_publish(c, 0, 2, data, 10), IB_ESTATE);
  TH_CHECK_MSG(strstr(ib_errmsg(), "version") != NULL, "%s", ib_errmsg());
  TH_CHECK_EQ_INT(pc_publish(c, 0, 0, data, 10), IB_EINVAL);
  TH_CHECK_EQ_INT(pc_publish(c, 3, 5, data, 10), IB_EINVAL);
  TH_CHECK_EQ_INT(pc_get_if_newer(c, -1, 0, 0, &blob, NULL), IB_EINVAL);
  /* Over the message limit: refused before sending. */
  size_t big = 17u * 1024 * 1024;
  uint8_t *huge = calloc(big, 1);
  TH_CHECK_EQ_INT(pc_publish(c, 0, 9, huge, big), IB_EINVAL);
  TH_CHECK(strstr(ib_errmsg(), "max-message-mb") != NULL);
  free(huge);

  free(data);
  pc_blob_free(&blob);
  TH_CHECK(blob.data == NULL && blob.len == 0);
  rc_client_close(c);
  TH_CHECK_EQ_INT(rt_server_stop(&srv, 15), 0);
}

static const th_case cases[] = {
    {"params publish and get-if-newer", test_params},
    {NULL, NULL},
};

int main(int argc, char **argv) { return th_main(argc, argv, cases); }
