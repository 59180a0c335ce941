// A sense-reversing barrier over C11 atomics for the worker threads of one process. Arriving
// threads spin on the generation counter with a pause instruction for a few microseconds (the
// usual case: the workers of one step finish within that of each other), then yield, then sleep
// in short naps, so that waiting costs little when ranks × workers oversubscribe the cores.
#define _GNU_SOURCE
#include "worker_sync.h"
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct st_worker_barrier {
    int workers;
    _Atomic int64_t arrived;     // arrivals in the current generation
    _Atomic int64_t generation;  // completed barriers
    _Atomic int failed;
    _Atomic int64_t *reached;    // (workers): the generation each worker last arrived in, plus one
    _Atomic int64_t *steps;      // (workers): the training step each worker last began
};

struct st_worker_barrier *st_worker_barrier_create(int workers) {
    if (workers < 1) return NULL;
    struct st_worker_barrier *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->reached = calloc((size_t)workers, sizeof *b->reached);
    b->steps = calloc((size_t)workers, sizeof *b->steps);
    if (!b->reached || !b->steps) { free((void *)b->reached); free((void *)b->steps); free(b); return NULL; }
    b->workers = workers;
    atomic_init(&b->arrived, 0);
    atomic_init(&b->generation, 0);
    atomic_init(&b->failed, 0);
    for (int i = 0; i < workers; i++) { atomic_init(&b->reached[i], 0); atomic_init(&b->steps[i], -1); }
    return b;
}

void st_worker_barrier_destroy(struct st_worker_barrier *b) {
    if (!b) return;
    free((void *)b->reached);
    free((void *)b->steps);
    free(b);
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

int st_worker_barrier_wait(struct st_worker_barrier *b, int worker, double timeout_seconds) {
    if (atomic_load(&b->failed)) return 1;
    int64_t generation = atomic_load(&b->generation);
    if (worker >= 0 && worker < b->workers) atomic_store(&b->reached[worker], generation + 1);
    if (atomic_fetch_add(&b->arrived, 1) == b->workers - 1) {
        // The last to arrive resets the count before releasing the others, so none of them can
        // arrive at the next barrier before the reset.
        atomic_store(&b->arrived, 0);
        atomic_fetch_add(&b->generation, 1);
        return 0;
    }
    double start = 0;
    for (long spins = 0;; spins++) {
        if (atomic_load_explicit(&b->generation, memory_order_acquire) != generation) return 0;
        if (atomic_load_explicit(&b->failed, memory_order_relaxed)) return 1;
        if (spins < 20000) { cpu_pause(); continue; }
        if (spins == 20000) start = seconds_now();
        if (spins < 20200) { sched_yield(); continue; }
        struct timespec nap = {0, 50000};  // 50 µs
        nanosleep(&nap, NULL);
        if ((spins & 63) == 0 && seconds_now() - start > timeout_seconds) return 2;
    }
}

int st_worker_barrier_fail(struct st_worker_barrier *b) { return atomic_exchange(&b->failed, 1) == 0; }

void st_worker_barrier_note_step(struct st_worker_barrier *b, int worker, int64_t step) {
    if (worker >= 0 && worker < b->workers) atomic_store(&b->steps[worker], step);
}

int64_t st_worker_barrier_step(struct st_worker_barrier *b, int worker) {
    return worker >= 0 && worker < b->workers ? atomic_load(&b->steps[worker]) : -1;
}

int st_worker_barrier_arrived(struct st_worker_barrier *b, int worker) {
    if (worker < 0 || worker >= b->workers) return 0;
    return atomic_load(&b->reached[worker]) == atomic_load(&b->generation) + 1;
}

int st_affinity_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}
