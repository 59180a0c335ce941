// Synchronization of the worker threads of one process (worker_sync.c): a reusable barrier that
// spins briefly and then sleeps, can be failed by any worker (every waiter returns at once), and
// knows which workers have not arrived, for the watchdog's message.
#ifndef SEQTRAIN_WORKER_SYNC_H
#define SEQTRAIN_WORKER_SYNC_H
#include <stdint.h>

struct st_worker_barrier;

/// A barrier for `workers` threads; NULL when memory runs out.
struct st_worker_barrier *st_worker_barrier_create(int workers);
void st_worker_barrier_destroy(struct st_worker_barrier *barrier);

/// Worker `worker` waits until all have arrived. Returns 0 when they have, 1 when the barrier was
/// failed (by st_worker_barrier_fail, now or before), 2 when `timeout_seconds` passed first.
int st_worker_barrier_wait(struct st_worker_barrier *barrier, int worker, double timeout_seconds);

/// Fails the barrier for good: every present and future wait returns 1. Returns 1 for the first
/// call (the one that reports why), 0 after.
int st_worker_barrier_fail(struct st_worker_barrier *barrier);

/// The watchdog's notes: the training step each worker last began.
void st_worker_barrier_note_step(struct st_worker_barrier *barrier, int worker, int64_t step);
int64_t st_worker_barrier_step(struct st_worker_barrier *barrier, int worker);

/// After a timeout: whether `worker` has arrived at the barrier the others are waiting at.
int st_worker_barrier_arrived(struct st_worker_barrier *barrier, int worker);

/// CPUs this thread may run on (its affinity mask); 0 when it cannot be read.
int st_affinity_cpu_count(void);

#endif
