/* ratelim.h: a Reverb-style samples-per-insert rate limiter for the online table of a shard.
 *
 * It keeps the learner's update-to-data ratio: with samples_per_insert = UTD x batch, every
 * online insert "pays for" that many sampled items, and inserters or samplers that run ahead of
 * the other side wait (with a deadline) on a condition variable. It knows nothing of the store:
 * the server calls rlim_await_insert before store_insert on the online table and
 * rlim_await_sample before store_sample, and gives back what was not used with rlim_undo_*.
 * Demo inserts are never passed to the limiter (they do not count).
 *
 * The rule (Reverb's SampleToInsertRatio). Counters: I = online items inserted, S = items sampled
 * (demo and online rows alike). The cursor is  c = I * spi - S  and the allowed band is
 *   min_diff = min_size_to_sample * spi - error_buffer,
 *   max_diff = min_size_to_sample * spi + error_buffer.
 * An insert of n items may proceed (and then I += n) when
 *   paused, or I + n <= min_size_to_sample (warm-up), or c + n*spi <= max_diff,
 *   or the batch alone is wider than the band (n*spi > max_diff - min_diff)
 *      and c + spi <= max_diff.
 * A sample of n items may proceed (and then S += n) when
 *   paused, or I >= min_size_to_sample and ( c - n >= min_diff,
 *   or the batch alone is wider than the band (n > max_diff - min_diff) and c - 1 >= min_diff ).
 * The two "wider than the band" clauses admit an oversized batch when its first item fits, so such
 * a batch overshoots the band by less than one batch instead of waiting forever.
 *
 * Worked example: spi = 2, min_size_to_sample = 100, error_buffer = 50, so the band is [150, 250].
 *   - 100 single inserts pass freely (warm-up); now I = 100, S = 0, c = 200. Samples waited so far.
 *   - sample 32: c - 32 = 168 >= 150, passes, c = 168. sample 32 again: 136 < 150, it waits.
 *   - insert 1: c + 2 = 170 <= 250, passes; the waiting sampler re-checks: 138 < 150, still waits.
 *   - 6 more inserts bring c to 182; the sampler passes (150 >= 150), c = 150.
 *   - inserts keep passing until c = 250; the next insert (252 > 250) waits for a sample.
 * So at every moment |I * spi - S - min_size_to_sample * spi| <= error_buffer, up to one oversized
 * batch, and the realised ratio S / I tends to spi as I grows.
 * Deadlock note: with insert batches of n_i items and sample batches of n_s rows, choose
 * 2 * error_buffer >= n_s + n_i * spi; otherwise both sides can wait until their deadlines.
 * error_buffer = INFINITY keeps only the min_size_to_sample gate (Reverb's MinSize).
 *
 * Paused (for preloading demos, or any time the ratio must not be enforced): every call passes at
 * once, but I and S are still counted, so resuming continues from the true cursor.
 *
 * Fairness: the blocked calls of each side are served in arrival order. A call that finds other
 * calls of its side already waiting queues behind them even if it would fit now (so a deadline 0
 * "try once" fails while others wait), and only the first in line may proceed; a call that times
 * out leaves the line. So no inserter can be overtaken again and again until its deadline.
 * Thread safety: all functions are thread-safe (one mutex, one condition variable on
 * CLOCK_MONOTONIC). Deadlines are absolute ib_now_ns() values; a call never waits past its
 * deadline. rlim_destroy must not race with other calls. */
#ifndef IB_RATELIM_H
#define IB_RATELIM_H

#include <stdbool.h>
#include <stdint.h>

typedef struct rlim_config {
  double samples_per_insert;   /* > 0, finite (e.g. UTD x batch) */
  double error_buffer;         /* >= max(1, samples_per_insert), or INFINITY */
  uint64_t min_size_to_sample; /* online items before any sample may proceed */
  bool paused;                 /* start paused (not enforced) */
} rlim_config;

typedef struct rlim_info {
  rlim_config cfg;
  double min_diff, max_diff; /* the band */
  double cursor;             /* I * spi - S */
  uint64_t inserts, samples; /* I and S */
  uint32_t waiting_inserts;  /* calls blocked right now */
  uint32_t waiting_samples;
  uint64_t insert_blocked_ns; /* total time insert calls spent waiting */
  uint64_t sample_blocked_ns;
  uint64_t insert_timeouts; /* calls that returned IB_ETIMEDOUT (not rlim_await_insert_budget's) */
  uint64_t sample_timeouts;
  bool shut_down;
} rlim_info;

typedef struct rlim rlim;

/* Creates a limiter. Errors: IB_EINVAL naming the bad setting (non-positive or non-finite spi,
 * NaN or too small error_buffer) with a HINT. On success *out is owned by the caller. */
int rlim_create(rlim **out, const rlim_config *cfg);
/* Accepts NULL. No other call may be running. */
void rlim_destroy(rlim *l);

/* Replaces the settings (the counters are kept) and wakes every waiter to re-check.
 * Same errors as rlim_create; on error nothing changes. */
int rlim_config_set(rlim *l, const rlim_config *cfg);
/* Pauses (true) or resumes (false) enforcement; wakes every waiter. */
void rlim_pause(rlim *l, bool paused);

/* Waits until an insert of n online items may proceed, then counts them (I += n).
 * Returns IB_OK; IB_ETIMEDOUT if deadline_ns passed first (nothing counted; deadline 0 means
 * "do not wait": try once); IB_EUNAVAIL after rlim_shutdown. n == 0 returns IB_OK at once. */
int rlim_await_insert(rlim *l, uint64_t n, uint64_t deadline_ns);
/* The same, for a deadline that is the caller's own wait budget (a stream's max_wait_ms, which
 * ends in a partial acknowledgement, not an error): running out of it is not counted in
 * insert_timeouts. */
int rlim_await_insert_budget(rlim *l, uint64_t n, uint64_t deadline_ns);
/* Waits until a sample of n items may proceed, then counts them (S += n). Same returns. */
int rlim_await_sample(rlim *l, uint64_t n, uint64_t deadline_ns);
/* Try once without waiting, as a caller does before it prepares to wait: counts the items and
 * returns true if the call may proceed now (first in line and within the band, or paused);
 * otherwise returns false, counts nothing and records no timeout and no error. Shut down,
 * it returns false: the await that follows reports that. */
bool rlim_try_insert(rlim *l, uint64_t n);
bool rlim_try_sample(rlim *l, uint64_t n);
/* Gives back n counted inserts / samples that did not happen (validation failed, duplicates,
 * the store call failed) and wakes waiters. n larger than the counter is a bug. */
void rlim_undo_insert(rlim *l, uint64_t n);
void rlim_undo_sample(rlim *l, uint64_t n);

/* Sets the counters, e.g. after a restore from store_table_info (online total_inserts and the
 * total_samples of both tables). Wakes waiters. */
void rlim_counts_set(rlim *l, uint64_t inserts, uint64_t samples);
/* As rlim_counts_set, for counts restored after a crash: the log replays every insert, but no
 * sample (samples are counted only in checkpoints), so the restored cursor can lie far above the
 * band, and every insert would wait until samplers had drawn again all that the last checkpoint
 * missed (a checkpoint period's worth; with no periodic checkpoint, the run's). The restored
 * sample count stays that low in later checkpoints too (they save the store's count), so a later
 * clean restart can find the cursor past the band as well. The limiter held
 * the cursor inside the band before the crash, so a cursor above max_diff is moved to the band's
 * middle (min_size_to_sample * spi) by counting the missing samples. Returns the samples added
 * (0 when the cursor was in the band, or the band is unbounded). */
uint64_t rlim_counts_restore(rlim *l, uint64_t inserts, uint64_t samples);

/* Makes every current and future await return IB_EUNAVAIL (server shutdown). Irreversible. */
void rlim_shutdown(rlim *l);

void rlim_info_get(rlim *l, rlim_info *out);

#endif /* IB_RATELIM_H */
