/* nav2d.c: the pure-C LiDAR navigation task (see nav2d.h for the task itself).
 *
 * Design.
 *  - The world is a handful of primitives (arena box, discs, segments), so collision and LiDAR
 *    are analytic: a ray against a disc is one quadratic, against a segment two cross products.
 *    Per step the discs out of LiDAR reach are dropped once, and each ray costs a few multiplies
 *    per remaining primitive; that is what makes ~10^5-10^6 steps/s per core possible.
 *  - Everything is float and evaluated in a fixed order without contraction (C11 mode, no
 *    -ffast-math), so an episode is bit-identical for a seed and an action sequence on a given
 *    platform; the golden-episode test relies on it.
 *  - The planner grid (100 x 100 cells of 0.1 m, obstacles inflated by robot radius + 0.2 m) is
 *    built once per reset. The reset's reachability check (breadth-first search) and the
 *    expert's A* use the same grid and the same move rule (8-connected, no corner cutting), so
 *    "the reset accepted the layout" implies "the expert can plan it".
 *  - All buffers (grid, A* heap, path) are allocated at create time; reset, step and expert
 *    never allocate.
 *  - The layout RNG is seeded from the reset seed alone, so resets are reproducible no matter
 *    what happened before; the expert's noise comes from the caller's rng. */
#include "nav2d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"

#define ARENA 10.0f      /* m, square arena side */
#define ROBOT_R 0.2f     /* m */
#define GOAL_TOL 0.3f    /* m, success radius */
#define V_MAX 1.0f       /* m/s at action 1 */
#define W_MAX 2.0f       /* rad/s at action 1 */
#define DT 0.1f          /* s per env step */
#define RANGE 5.0f       /* m, LiDAR range */
#define CELL 0.1f        /* m, planner grid resolution */
#define GN 100           /* cells per side = ARENA / CELL */
#define GW (GN + 2)      /* padded row width: a ring of blocked cells removes bounds checks */
#define INFLATE 0.4f     /* m, robot radius + 0.2 m safety margin for the planner */
#define CLEAR 0.5f       /* m, start/goal distance from any obstacle (> INFLATE + half a cell diagonal) */
#define MIN_START_GOAL 5.0f
#define WALL_LEN 3.0f
#define LOOKAHEAD 0.4f   /* m, pure-pursuit lookahead */
#define REPLAN_DIST 0.7f /* m off the path before the expert replans */
#define MAX_DISCS 32
#define MAX_WALLS 8
#define LAYOUT_TRIES 1000
#define PLACE_TRIES 200
#define PI_F 3.14159265358979f

typedef struct disc {
  float x, y, r;
} disc;

typedef struct seg {
  float x0, y0, x1, y1;
} seg;

typedef struct heap_item {
  float f;
  int cell;
} heap_item;

typedef struct nav {
  env e; /* first, so an env* of this task is a nav* */
  nav2d_params p;
  env_obs_key keys[2];
  disc discs[MAX_DISCS];
  seg walls[MAX_WALLS];
  float x, y, th, gx, gy, last_v, last_w;
  float cth, sth;        /* cosf(th), sinf(th), updated with th (used by the step and the LiDAR) */
  float *ray_c, *ray_s;  /* owned, n_rays: ray directions in the robot frame */
  uint8_t grid[GW * GW]; /* 1 = blocked for the planner; cell (cx, cy) is (cy + 1) * GW + cx + 1 */
  /* planner scratch, sized at create time */
  uint8_t mark[GW * GW]; /* BFS: visited; A*: 0 new, 1 open, 2 closed */
  float gcost[GW * GW];
  int parent[GW * GW];
  int queue[GW * GW];
  heap_item *heap; /* owned, 8 * GW * GW (lazy deletion pushes each cell at most 8 times) */
  float *path_x, *path_y; /* owned, GW * GW points: cell centres from robot to goal */
  int path_n, path_i, planned;
} nav;

/* ---- geometry ---- */

static float seg_dist2(const seg *s, float px, float py) {
  float ex = s->x1 - s->x0, ey = s->y1 - s->y0;
  float wx = px - s->x0, wy = py - s->y0;
  float l2 = ex * ex + ey * ey;
  float u = l2 > 0.0f ? (wx * ex + wy * ey) / l2 : 0.0f;
  u = u < 0.0f ? 0.0f : (u > 1.0f ? 1.0f : u);
  float dx = wx - u * ex, dy = wy - u * ey;
  return dx * dx + dy * dy;
}

/* Distance from (x, y) to the nearest obstacle surface or arena wall. */
static float clearance(const nav *n, float x, float y) {
  float best = fminf(fminf(x, ARENA - x), fminf(y, ARENA - y));
  for (int i = 0; i < n->p.n_discs; i++) {
    const disc *d = &n->discs[i];
    float dd = sqrtf((x - d->x) * (x - d->x) + (y - d->y) * (y - d->y)) - d->r;
    if (dd < best) best = dd;
  }
  for (int i = 0; i < n->p.n_walls; i++) {
    float dd = sqrtf(seg_dist2(&n->walls[i], x, y));
    if (dd < best) best = dd;
  }
  return best;
}

static int collides(const nav *n, float x, float y) {
  if (x < ROBOT_R || x > ARENA - ROBOT_R || y < ROBOT_R || y > ARENA - ROBOT_R) return 1;
  for (int i = 0; i < n->p.n_discs; i++) {
    const disc *d = &n->discs[i];
    float dx = x - d->x, dy = y - d->y, rr = d->r + ROBOT_R;
    if (dx * dx + dy * dy < rr * rr) return 1;
  }
  for (int i = 0; i < n->p.n_walls; i++)
    if (seg_dist2(&n->walls[i], x, y) < ROBOT_R * ROBOT_R) return 1;
  return 0;
}

static int cell_of(float x, float y) {
  int cx = (int)(x / CELL), cy = (int)(y / CELL);
  cx = cx < 0 ? 0 : (cx >= GN ? GN - 1 : cx);
  cy = cy < 0 ? 0 : (cy >= GN ? GN - 1 : cy);
  return (cy + 1) * GW + cx + 1;
}

static float cell_x(int cell) { return ((float)(cell % GW - 1) + 0.5f) * CELL; }
static float cell_y(int cell) { return ((float)(cell / GW - 1) + 0.5f) * CELL; }

/* ---- observation ---- */

static void write_obs(const nav *n, float *obs) {
  float c = n->cth, s = n->sth;
  float gxw = n->gx - n->x, gyw = n->gy - n->y;
  obs[0] = (c * gxw + s * gyw) / ARENA;
  obs[1] = (-s * gxw + c * gyw) / ARENA;
  obs[2] = sqrtf(gxw * gxw + gyw * gyw) / ARENA;
  obs[3] = n->last_v;
  obs[4] = n->last_w;

  /* Discs that can be seen at all: relative centre and |f|^2 - r^2 per disc, once per step. */
  float fx[MAX_DISCS], fy[MAX_DISCS], c2[MAX_DISCS];
  int nn = 0;
  for (int i = 0; i < n->p.n_discs; i++) {
    const disc *d = &n->discs[i];
    float ax = d->x - n->x, ay = d->y - n->y, d2 = ax * ax + ay * ay;
    float reach = RANGE + d->r;
    if (d2 >= reach * reach) continue;
    fx[nn] = ax;
    fy[nn] = ay;
    c2[nn] = d2 - d->r * d->r;
    nn++;
  }
  float *lidar = obs + 5;
  for (int i = 0; i < n->p.n_rays; i++) {
    float dx = c * n->ray_c[i] - s * n->ray_s[i];
    float dy = s * n->ray_c[i] + c * n->ray_s[i];
    float t = RANGE;
    /* arena walls */
    float tb = RANGE;
    if (dx > 1e-6f) tb = (ARENA - n->x) / dx;
    else if (dx < -1e-6f) tb = -n->x / dx;
    if (tb < t) t = tb;
    tb = RANGE;
    if (dy > 1e-6f) tb = (ARENA - n->y) / dy;
    else if (dy < -1e-6f) tb = -n->y / dy;
    if (tb < t) t = tb;
    /* discs: |f - t d|^2 = r^2 with |d| = 1 gives t = b - sqrt(b^2 - c2), b = f.d; the robot is
       never inside a disc (c2 > 0), so b <= 0 means the disc is behind. */
    for (int j = 0; j < nn; j++) {
      float b = fx[j] * dx + fy[j] * dy;
      if (b <= 0.0f) continue;
      float disc2 = b * b - c2[j];
      if (disc2 <= 0.0f) continue;
      float tt = b - sqrtf(disc2);
      if (tt < t) t = tt;
    }
    /* segments: origin + t d = a + u e, solved with 2-D cross products */
    for (int j = 0; j < n->p.n_walls; j++) {
      const seg *w = &n->walls[j];
      float ex = w->x1 - w->x0, ey = w->y1 - w->y0;
      float den = dx * ey - dy * ex;
      if (fabsf(den) < 1e-9f) continue;
      float wx = w->x0 - n->x, wy = w->y0 - n->y;
      float tt = (wx * ey - wy * ex) / den;
      float u = (wx * dy - wy * dx) / den;
      if (tt >= 0.0f && u >= 0.0f && u <= 1.0f && tt < t) t = tt;
    }
    lidar[i] = (t < 0.0f ? 0.0f : t) / RANGE;
  }
}

/* ---- planner grid ---- */

static void grid_build(nav *n) {
  /* The padding ring and every cell whose centre is within INFLATE of the arena wall are
     blocked: centres (c + 0.5) * CELL < 0.4 m means the first 4 cells on each side. */
  const int edge = (int)(INFLATE / CELL + 0.5f); /* 4 */
  for (int r = 0; r < GW; r++)
    for (int q = 0; q < GW; q++) {
      int cx = q - 1, cy = r - 1;
      n->grid[r * GW + q] = cx < edge || cy < edge || cx >= GN - edge || cy >= GN - edge;
    }
  for (int i = 0; i < n->p.n_discs; i++) {
    const disc *d = &n->discs[i];
    float rr = d->r + INFLATE;
    int x0 = (int)floorf((d->x - rr) / CELL), x1 = (int)floorf((d->x + rr) / CELL);
    int y0 = (int)floorf((d->y - rr) / CELL), y1 = (int)floorf((d->y + rr) / CELL);
    for (int cy = IB_MAX(y0, 0); cy <= IB_MIN(y1, GN - 1); cy++)
      for (int cx = IB_MAX(x0, 0); cx <= IB_MIN(x1, GN - 1); cx++) {
        float x = (cx + 0.5f) * CELL - d->x, y = (cy + 0.5f) * CELL - d->y;
        if (x * x + y * y < rr * rr) n->grid[(cy + 1) * GW + cx + 1] = 1;
      }
  }
  for (int i = 0; i < n->p.n_walls; i++) {
    const seg *w = &n->walls[i];
    int x0 = (int)floorf((fminf(w->x0, w->x1) - INFLATE) / CELL), x1 = (int)floorf((fmaxf(w->x0, w->x1) + INFLATE) / CELL);
    int y0 = (int)floorf((fminf(w->y0, w->y1) - INFLATE) / CELL), y1 = (int)floorf((fmaxf(w->y0, w->y1) + INFLATE) / CELL);
    for (int cy = IB_MAX(y0, 0); cy <= IB_MIN(y1, GN - 1); cy++)
      for (int cx = IB_MAX(x0, 0); cx <= IB_MIN(x1, GN - 1); cx++)
        if (seg_dist2(w, (cx + 0.5f) * CELL, (cy + 0.5f) * CELL) < INFLATE * INFLATE) n->grid[(cy + 1) * GW + cx + 1] = 1;
  }
}

/* Neighbour offsets in the padded grid: 4 orthogonal, then 4 diagonal whose two orthogonal
 * components are NB_OX / NB_OY. */
static const int NB_OFF[8] = {1, -1, GW, -GW, GW + 1, -GW + 1, GW - 1, -GW - 1};
static const int NB_OX[8] = {0, 0, 0, 0, 1, 1, -1, -1};
static const int NB_OY[8] = {0, 0, 0, 0, GW, -GW, GW, -GW};

/* The move rule shared by BFS and A*: the target is free and, for a diagonal, both orthogonal
 * cells are free too (no squeezing between two blocked corners). Returns the neighbour or -1.
 * The blocked padding ring keeps every index in range. */
static inline int neighbour(const nav *n, int cell, int k) {
  int m = cell + NB_OFF[k];
  if (n->grid[m]) return -1;
  if (k >= 4 && (n->grid[cell + NB_OX[k]] || n->grid[cell + NB_OY[k]])) return -1;
  return m;
}

/* Reachability under the move rule. A diagonal move is only allowed when both orthogonal cells
 * are free, so it can always be replaced by two orthogonal moves: 4-connected reachability is
 * the same relation, at half the neighbour checks. */
static int bfs_reaches(nav *n, int from, int to) {
  memset(n->mark, 0, sizeof n->mark);
  int head = 0, tail = 0;
  n->queue[tail++] = from;
  n->mark[from] = 1;
  while (head < tail) {
    int c = n->queue[head++];
    if (c == to) return 1;
    for (int k = 0; k < 4; k++) {
      int m = neighbour(n, c, k);
      if (m >= 0 && !n->mark[m]) {
        n->mark[m] = 1;
        n->queue[tail++] = m;
      }
    }
  }
  return 0;
}

/* ---- A* (binary heap with lazy deletion) ---- */

static void heap_push(heap_item *h, int *len, float f, int cell) {
  int i = (*len)++;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (h[p].f <= f) break;
    h[i] = h[p];
    i = p;
  }
  h[i].f = f;
  h[i].cell = cell;
}

static heap_item heap_pop(heap_item *h, int *len) {
  heap_item top = h[0], last = h[--(*len)];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= *len) break;
    if (c + 1 < *len && h[c + 1].f < h[c].f) c++;
    if (last.f <= h[c].f) break;
    h[i] = h[c];
    i = c;
  }
  if (*len > 0) h[i] = last;
  return top;
}

static float octile(int a, int b) {
  float dx = fabsf((float)(a % GW - b % GW)), dy = fabsf((float)(a / GW - b / GW));
  return dx > dy ? dx + 0.41421356f * dy : dy + 0.41421356f * dx;
}

/* Plans from the robot's cell to the goal's cell; fills path_x/y. The start cell may be blocked
 * (noise can push the robot into the inflation margin); the search still leaves it. */
static int astar(nav *n) {
  int from = cell_of(n->x, n->y), to = cell_of(n->gx, n->gy);
  memset(n->mark, 0, sizeof n->mark);
  int len = 0;
  n->gcost[from] = 0.0f;
  n->parent[from] = -1;
  n->mark[from] = 1;
  heap_push(n->heap, &len, octile(from, to), from);
  int found = 0;
  while (len > 0) {
    heap_item it = heap_pop(n->heap, &len);
    int c = it.cell;
    if (n->mark[c] == 2) continue;
    n->mark[c] = 2;
    if (c == to) {
      found = 1;
      break;
    }
    for (int k = 0; k < 8; k++) {
      int m = neighbour(n, c, k);
      if (m < 0 || n->mark[m] == 2) continue;
      float g = n->gcost[c] + (k < 4 ? 1.0f : 1.41421356f);
      if (n->mark[m] == 0 || g < n->gcost[m]) {
        n->gcost[m] = g;
        n->parent[m] = c;
        n->mark[m] = 1;
        IB_ASSERT(len < 8 * GW * GW);
        heap_push(n->heap, &len, g + octile(m, to), m);
      }
    }
  }
  if (!found) {
    n->path_n = 0;
    return 0;
  }
  int cnt = 0;
  for (int c = to; c >= 0; c = n->parent[c]) cnt++;
  int i = cnt;
  for (int c = to; c >= 0; c = n->parent[c]) {
    i--;
    n->path_x[i] = cell_x(c);
    n->path_y[i] = cell_y(c);
  }
  n->path_x[cnt - 1] = n->gx; /* end exactly on the goal, not its cell centre */
  n->path_y[cnt - 1] = n->gy;
  n->path_n = cnt;
  n->path_i = 0;
  return 1;
}

/* ---- env ops ---- */

static void sample_layout(nav *n, rng *r) {
  for (int i = 0; i < n->p.n_discs; i++) {
    n->discs[i].x = 0.5f + 9.0f * rng_uniform(r);
    n->discs[i].y = 0.5f + 9.0f * rng_uniform(r);
    n->discs[i].r = 0.3f + 0.5f * rng_uniform(r);
  }
  for (int i = 0; i < n->p.n_walls; i++) {
    float cx = 1.5f + 7.0f * rng_uniform(r), cy = 1.5f + 7.0f * rng_uniform(r);
    float a = PI_F * rng_uniform(r);
    float hx = 0.5f * WALL_LEN * cosf(a), hy = 0.5f * WALL_LEN * sinf(a);
    n->walls[i] = (seg){cx - hx, cy - hy, cx + hx, cy + hy};
  }
}

static int sample_free_point(const nav *n, rng *r, float *x, float *y) {
  for (int k = 0; k < PLACE_TRIES; k++) {
    float px = 0.5f + 9.0f * rng_uniform(r), py = 0.5f + 9.0f * rng_uniform(r);
    if (clearance(n, px, py) >= CLEAR) {
      *x = px;
      *y = py;
      return 1;
    }
  }
  return 0;
}

static int nav_reset(env *e, uint64_t seed, float *obs) {
  nav *n = (nav *)e;
  rng r;
  rng_seed(&r, seed, "nav2d", 0, "layout");
  for (int tries = 0; tries < LAYOUT_TRIES; tries++) {
    sample_layout(n, &r);
    float sx, sy, gx, gy;
    if (!sample_free_point(n, &r, &sx, &sy)) continue;
    int ok = 0;
    for (int k = 0; k < PLACE_TRIES && !ok; k++) {
      if (!sample_free_point(n, &r, &gx, &gy)) break;
      ok = hypotf(gx - sx, gy - sy) >= MIN_START_GOAL;
    }
    if (!ok) continue;
    grid_build(n);
    if (!bfs_reaches(n, cell_of(sx, sy), cell_of(gx, gy))) continue; /* no path: reject the layout */
    n->x = sx;
    n->y = sy;
    n->gx = gx;
    n->gy = gy;
    n->th = PI_F * (2.0f * rng_uniform(&r) - 1.0f);
    n->cth = cosf(n->th);
    n->sth = sinf(n->th);
    n->last_v = n->last_w = 0.0f;
    n->planned = 0;
    n->path_n = 0;
    write_obs(n, obs);
    return IB_OK;
  }
  return ib_fail(IB_ESTATE, "%s: no layout with a path after %d tries for seed %llu (HINT: fewer discs or walls)", e->name,
                 LAYOUT_TRIES, (unsigned long long)seed);
}

static float clip1(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

static int nav_step(env *e, const float *action, float *obs, env_info *info) {
  nav *n = (nav *)e;
  float av = clip1(action[0]), aw = clip1(action[1]);
  n->th += aw * W_MAX * DT;
  if (n->th > PI_F) n->th -= 2.0f * PI_F;
  else if (n->th < -PI_F) n->th += 2.0f * PI_F;
  n->cth = cosf(n->th);
  n->sth = sinf(n->th);
  float nx = n->x + av * V_MAX * DT * n->cth;
  float ny = n->y + av * V_MAX * DT * n->sth;
  if (!collides(n, nx, ny)) {
    n->x = nx;
    n->y = ny;
  }
  n->last_v = av;
  n->last_w = aw;
  float dx = n->gx - n->x, dy = n->gy - n->y;
  int success = dx * dx + dy * dy < GOAL_TOL * GOAL_TOL;
  info->success = success;
  info->reward = success ? 1.0f : 0.0f;
  write_obs(n, obs);
  return IB_OK;
}

static int nav_expert(env *e, rng *r, float noise, float *action) {
  nav *n = (nav *)e;
  if (!n->planned) {
    astar(n);
    n->planned = 1;
  }
  float tx = n->gx, ty = n->gy;
  if (n->path_n > 0) {
    /* Progress: the closest path point a little ahead of the last one. */
    int best = n->path_i, end = IB_MIN(n->path_n, n->path_i + 30);
    float bd = INFINITY;
    for (int j = n->path_i; j < end; j++) {
      float d = (n->path_x[j] - n->x) * (n->path_x[j] - n->x) + (n->path_y[j] - n->y) * (n->path_y[j] - n->y);
      if (d < bd) {
        bd = d;
        best = j;
      }
    }
    n->path_i = best;
    if (bd > REPLAN_DIST * REPLAN_DIST) astar(n); /* pushed off the path (noise or a bump) */
    for (int j = n->path_i; j < n->path_n; j++) {
      float d = hypotf(n->path_x[j] - n->x, n->path_y[j] - n->y);
      if (d >= LOOKAHEAD) {
        tx = n->path_x[j];
        ty = n->path_y[j];
        break;
      }
    }
  }
  float c = n->cth, s = n->sth;
  float bx = c * (tx - n->x) + s * (ty - n->y), by = -s * (tx - n->x) + c * (ty - n->y);
  float alpha = atan2f(by, bx);
  float w = 2.5f * alpha;
  w = w < -W_MAX ? -W_MAX : (w > W_MAX ? W_MAX : w);
  float v = fabsf(alpha) < 0.5f * PI_F ? V_MAX * cosf(alpha) : 0.0f;
  action[0] = clip1(v / V_MAX + (noise > 0.0f ? noise * rng_normal(r) : 0.0f));
  action[1] = clip1(w / W_MAX + (noise > 0.0f ? noise * rng_normal(r) : 0.0f));
  return IB_OK;
}

static void nav_destroy(env *e) {
  nav *n = (nav *)e;
  free(n->ray_c);
  free(n->ray_s);
  free(n->heap);
  free(n->path_x);
  free(n->path_y);
  free(n);
}

static const env_ops nav_ops = {nav_reset, nav_step, nav_expert, nav_destroy};

/* ---- public ---- */

int nav2d_variant(nav2d_params *out, const char *name) {
  IB_CHECK(out != NULL);
  if (name && !strcmp(name, "nav2d")) {
    *out = (nav2d_params){.n_discs = 8, .n_walls = 0, .n_rays = 32, .horizon = 200};
    return IB_OK;
  }
  if (name && !strcmp(name, "nav2d-hard")) {
    *out = (nav2d_params){.n_discs = 10, .n_walls = 4, .n_rays = 32, .horizon = 300};
    return IB_OK;
  }
  return ib_fail(IB_ENOTFOUND, "unknown nav2d variant '%s' (HINT: nav2d, nav2d-hard)", name ? name : "(null)");
}

int nav2d_create(const char *name, const nav2d_params *p, const env_config *cfg, env **out) {
  IB_CHECK(name != NULL && p != NULL && out != NULL);
  *out = NULL;
  if (p->n_discs < 0 || p->n_discs > MAX_DISCS)
    return ib_fail(IB_EINVAL, "nav2d: n_discs = %d is outside [0, %d]", p->n_discs, MAX_DISCS);
  if (p->n_walls < 0 || p->n_walls > MAX_WALLS)
    return ib_fail(IB_EINVAL, "nav2d: n_walls = %d is outside [0, %d]", p->n_walls, MAX_WALLS);
  if (p->n_rays < 4 || p->n_rays > 256) return ib_fail(IB_EINVAL, "nav2d: n_rays = %d is outside [4, 256]", p->n_rays);
  int horizon = cfg && cfg->horizon ? cfg->horizon : p->horizon;
  if (horizon <= 0) return ib_fail(IB_EINVAL, "nav2d: horizon = %d is not positive", horizon);
  nav *n = ib_xcalloc(1, sizeof *n);
  n->p = *p;
  n->keys[0] = (env_obs_key){"state", 5};
  n->keys[1] = (env_obs_key){"lidar", p->n_rays};
  n->ray_c = ib_xmalloc((size_t)p->n_rays * sizeof(float));
  n->ray_s = ib_xmalloc((size_t)p->n_rays * sizeof(float));
  for (int i = 0; i < p->n_rays; i++) {
    double a = 2.0 * 3.14159265358979323846 * i / p->n_rays;
    n->ray_c[i] = (float)cos(a);
    n->ray_s[i] = (float)sin(a);
  }
  n->heap = ib_xmalloc((size_t)8 * GW * GW * sizeof *n->heap);
  n->path_x = ib_xmalloc((size_t)GW * GW * sizeof(float));
  n->path_y = ib_xmalloc((size_t)GW * GW * sizeof(float));
  env *e = &n->e;
  e->ops = &nav_ops;
  e->obs_keys = n->keys;
  e->n_obs_keys = 2;
  snprintf(e->name, sizeof e->name, "%s", name);
  e->obs_dim = 5 + p->n_rays;
  e->act_dim = 2;
  e->horizon = horizon;
  e->impl = n;
  *out = e;
  return IB_OK;
}

void nav2d_get_pose(nav2d_pose *out, const env *e) {
  IB_CHECK(out != NULL && e != NULL && e->ops == &nav_ops);
  const nav *n = (const nav *)e;
  *out = (nav2d_pose){n->x, n->y, n->th, n->gx, n->gy};
}

int nav2d_has_path(const env *e) {
  IB_CHECK(e != NULL && e->ops == &nav_ops);
  nav *n = (nav *)e->impl;
  return bfs_reaches(n, cell_of(n->x, n->y), cell_of(n->gx, n->gy));
}
