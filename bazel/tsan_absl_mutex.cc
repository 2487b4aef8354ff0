// Makes absl::Mutex visible to ThreadSanitizer when Abseil itself is not
// instrumented (Debian's libabsl is built without -fsanitize=thread, so its
// lock operations are invisible to TSan and every access our code guards
// with an absl::Mutex is reported as a race). Preloaded by tsan_run.sh in
// `--config=tsan` only, it interposes the Mutex and CondVar entry points,
// calls the real ones (dlsym RTLD_NEXT), and tells TSan the happens-before
// edges they create: release on unlock, acquire on lock. Conditions run by
// Await/LockWhen read guarded state inside Abseil before the lock is
// reported acquired, so accesses are ignored during those calls only.
// Deadlock detection is not provided; data races are.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
}

namespace {

template <typename Fn>
Fn Real(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found\n", name);
    std::abort();
  }
  return reinterpret_cast<Fn>(f);
}

#define REAL(type, name)                     \
  static const auto real = Real<type>(name); \
  (void)real

struct Ignore {
  Ignore() { __tsan_ignore_thread_begin(); }
  ~Ignore() { __tsan_ignore_thread_end(); }
};

using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Time;

}  // namespace

// The mangled names of Debian 12's libabsl (inline namespace debian3).
#define M(x) _ZN4absl7debian35Mutex##x
#define C(x) _ZN4absl7debian37CondVar##x

extern "C" {

void M(4LockEv)(Mutex* mu) {
  REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  real(mu);
  __tsan_acquire(mu);
}
void M(10ReaderLockEv)(Mutex* mu) {
  REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(mu);
  __tsan_acquire(mu);
}
bool M(7TryLockEv)(Mutex* mu) {
  REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool ok = real(mu);
  if (ok) __tsan_acquire(mu);
  return ok;
}
bool M(13ReaderTryLockEv)(Mutex* mu) {
  REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool ok = real(mu);
  if (ok) __tsan_acquire(mu);
  return ok;
}
void M(6UnlockEv)(Mutex* mu) {
  REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(mu);
  Ignore ignore;  // waiters' conditions run here, under the lock
  real(mu);
}
void M(12ReaderUnlockEv)(Mutex* mu) {
  REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(mu);
  Ignore ignore;
  real(mu);
}

void M(5AwaitERKNS0_9ConditionE)(Mutex* mu, const Condition& c) {
  REAL(void (*)(Mutex*, const Condition&),
       "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(mu);
  {
    Ignore ignore;
    real(mu, c);
  }
  __tsan_acquire(mu);
}
bool M(16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE)(Mutex* mu,
                                                           const Condition& c,
                                                           Duration d) {
  REAL(bool (*)(Mutex*, const Condition&, Duration),
       "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_"
       "8DurationE");
  __tsan_release(mu);
  bool ok;
  {
    Ignore ignore;
    ok = real(mu, c, d);
  }
  __tsan_acquire(mu);
  return ok;
}
bool M(17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE)(Mutex* mu,
                                                        const Condition& c,
                                                        Time t) {
  REAL(bool (*)(Mutex*, const Condition&, Time),
       "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_"
       "4TimeE");
  __tsan_release(mu);
  bool ok;
  {
    Ignore ignore;
    ok = real(mu, c, t);
  }
  __tsan_acquire(mu);
  return ok;
}

#define LOCK_WHEN(sym, name)                        \
  void sym(Mutex* mu, const Condition& c) {         \
    REAL(void (*)(Mutex*, const Condition&), name); \
    {                                               \
      Ignore ignore;                                \
      real(mu, c);                                  \
    }                                               \
    __tsan_acquire(mu);                             \
  }
LOCK_WHEN(M(8LockWhenERKNS0_9ConditionE),
          "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE")
LOCK_WHEN(M(14ReaderLockWhenERKNS0_9ConditionE),
          "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE")

#define LOCK_WHEN_WITH(sym, name, T)                   \
  bool sym(Mutex* mu, const Condition& c, T t) {       \
    REAL(bool (*)(Mutex*, const Condition&, T), name); \
    bool ok;                                           \
    {                                                  \
      Ignore ignore;                                   \
      ok = real(mu, c, t);                             \
    }                                                  \
    __tsan_acquire(mu);                                \
    return ok;                                         \
  }
LOCK_WHEN_WITH(M(19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE),
               "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_"
               "9ConditionENS0_8DurationE",
               Duration)
LOCK_WHEN_WITH(M(20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE),
               "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_"
               "9ConditionENS0_4TimeE",
               Time)
LOCK_WHEN_WITH(M(25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE),
               "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_"
               "9ConditionENS0_8DurationE",
               Duration)
LOCK_WHEN_WITH(M(26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE),
               "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_"
               "9ConditionENS0_4TimeE",
               Time)

void C(4WaitEPNS0_5MutexE)(CondVar* cv, Mutex* mu) {
  REAL(void (*)(CondVar*, Mutex*),
       "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  {
    Ignore ignore;
    real(cv, mu);
  }
  __tsan_acquire(mu);
}
bool C(15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE)(CondVar* cv, Mutex* mu,
                                                     Duration d) {
  REAL(bool (*)(CondVar*, Mutex*, Duration),
       "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  bool ok;
  {
    Ignore ignore;
    ok = real(cv, mu, d);
  }
  __tsan_acquire(mu);
  return ok;
}
bool C(16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE)(CondVar* cv, Mutex* mu,
                                                  Time t) {
  REAL(bool (*)(CondVar*, Mutex*, Time),
       "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  bool ok;
  {
    Ignore ignore;
    ok = real(cv, mu, t);
  }
  __tsan_acquire(mu);
  return ok;
}

// absl::Notification: Notify publishes what came before it to whoever
// returns from a wait (its own Mutex use is inside Abseil, not interposed).
void _ZN4absl7debian312Notification6NotifyEv(absl::Notification* n) {
  REAL(void (*)(absl::Notification*),
       "_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(n);
  Ignore ignore;
  real(n);
}
void _ZNK4absl7debian312Notification19WaitForNotificationEv(
    const absl::Notification* n) {
  REAL(void (*)(const absl::Notification*),
       "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  {
    Ignore ignore;
    real(n);
  }
  __tsan_acquire(const_cast<absl::Notification*>(n));
}
bool _ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE(
    const absl::Notification* n, Duration d) {
  REAL(bool (*)(const absl::Notification*, Duration),
       "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_"
       "8DurationE");
  bool ok;
  {
    Ignore ignore;
    ok = real(n, d);
  }
  if (ok) __tsan_acquire(const_cast<absl::Notification*>(n));
  return ok;
}
bool _ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE(
    const absl::Notification* n, Time t) {
  REAL(bool (*)(const absl::Notification*, Time),
       "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_"
       "4TimeE");
  bool ok;
  {
    Ignore ignore;
    ok = real(n, t);
  }
  if (ok) __tsan_acquire(const_cast<absl::Notification*>(n));
  return ok;
}

}  // extern "C"
