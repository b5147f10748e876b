/* The libuv pool threads that run our CPU-heavy jobs (SM2 in sm2.c, HSM signing in
 * sign-async.c) mark themselves SCHED_BATCH (sched(7)) the first time: the scheduler then does
 * not let a pool thread that just woke up preempt a running thread. On 2 cores, every job queued
 * by the event loop woke a pool thread that took the loop's core at once: the loop lost ≈15 % of
 * its time that way under load (bench/evidence.ts, docs/architecture-notes.md). The pool threads
 * keep their fair share of CPU; only the wake-up preemption goes. */
#ifndef YIQIAN_POOL_THREAD_H
#define YIQIAN_POOL_THREAD_H
#ifdef __linux__
#include <sched.h>
#ifndef SCHED_BATCH
#define SCHED_BATCH 3 /* <linux/sched.h>; glibc shows it only under _GNU_SOURCE */
#endif
static __thread int yq_pool_thread_batched;
static inline void yq_pool_thread_batch(void) {
  if (yq_pool_thread_batched) return;
  yq_pool_thread_batched = 1;
  struct sched_param p = {0};
  (void)sched_setscheduler(0, SCHED_BATCH, &p); /* pid 0: the calling thread; failure changes nothing */
}
#else
static inline void yq_pool_thread_batch(void) {}
#endif
#endif
