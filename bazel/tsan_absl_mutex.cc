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

struct Ignore {
  Ignore() { __tsan_ignore_thread_begin(); }
  ~Ignore() { __tsan_ignore_thread_end(); }
};

// Every wrapper: tell TSan of the release, run the real call with accesses
// ignored (Abseil evaluates conditions inside it), then of the acquire.
// Either address may be null.
template <typename Call>
auto Around(const void* release, const void* acquire, Call call) {
  if (release != nullptr) __tsan_release(const_cast<void*>(release));
  struct Acquire {
    const void* addr;
    ~Acquire() {
      if (addr != nullptr) __tsan_acquire(const_cast<void*>(addr));
    }
  } after{acquire};
  Ignore ignore;
  return call();
}

using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Notification;
using absl::Time;

}  // namespace

// One interposed entry point of Debian 12's libabsl (inline namespace
// debian3): SYM is its mangled name, RELEASE / ACQUIRE the addresses whose
// edges it makes (expressions over the parameters).
#define WRAP(R, SYM, PARAMS, ARGS, RELEASE, ACQUIRE)            \
  R SYM PARAMS {                                                \
    static const auto real = Real<R(*) PARAMS>(#SYM);           \
    return Around(RELEASE, ACQUIRE, [&] { return real ARGS; }); \
  }

extern "C" {

WRAP(void, _ZN4absl7debian35Mutex4LockEv, (Mutex * mu), (mu), nullptr, mu)
WRAP(void, _ZN4absl7debian35Mutex10ReaderLockEv, (Mutex * mu), (mu), nullptr,
     mu)
WRAP(void, _ZN4absl7debian35Mutex6UnlockEv, (Mutex * mu), (mu), mu, nullptr)
WRAP(void, _ZN4absl7debian35Mutex12ReaderUnlockEv, (Mutex * mu), (mu), mu,
     nullptr)

// A failed try acquires nothing.
bool _ZN4absl7debian35Mutex7TryLockEv(Mutex* mu) {
  static const auto real =
      Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex7TryLockEv");
  const bool ok = real(mu);
  if (ok) __tsan_acquire(mu);
  return ok;
}
bool _ZN4absl7debian35Mutex13ReaderTryLockEv(Mutex* mu) {
  static const auto real =
      Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool ok = real(mu);
  if (ok) __tsan_acquire(mu);
  return ok;
}

// Await and CondVar waits release the lock inside and hold it again after.
WRAP(void, _ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE,
     (Mutex * mu, const Condition& c), (mu, c), mu, mu)
WRAP(bool,
     _ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE,
     (Mutex * mu, const Condition& c, Duration d), (mu, c, d), mu, mu)
WRAP(bool,
     _ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE,
     (Mutex * mu, const Condition& c, Time t), (mu, c, t), mu, mu)
WRAP(void, _ZN4absl7debian37CondVar4WaitEPNS0_5MutexE,
     (CondVar * cv, Mutex* mu), (cv, mu), mu, mu)
WRAP(bool, _ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE,
     (CondVar * cv, Mutex* mu, Duration d), (cv, mu, d), mu, mu)
WRAP(bool, _ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE,
     (CondVar * cv, Mutex* mu, Time t), (cv, mu, t), mu, mu)

// LockWhen takes the lock once the condition holds.
WRAP(void, _ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE,
     (Mutex * mu, const Condition& c), (mu, c), nullptr, mu)
WRAP(void, _ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE,
     (Mutex * mu, const Condition& c), (mu, c), nullptr, mu)
WRAP(
    bool,
    _ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
    (Mutex * mu, const Condition& c, Duration d), (mu, c, d), nullptr, mu)
WRAP(bool,
     _ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE,
     (Mutex * mu, const Condition& c, Time t), (mu, c, t), nullptr, mu)
WRAP(
    bool,
    _ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
    (Mutex * mu, const Condition& c, Duration d), (mu, c, d), nullptr, mu)
WRAP(
    bool,
    _ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE,
    (Mutex * mu, const Condition& c, Time t), (mu, c, t), nullptr, mu)

// Notification: Notify publishes what came before it to whoever returns
// from a wait (its own Mutex use is inside Abseil, not interposed). A wait
// that timed out acquires nothing: no Notify has released yet.
WRAP(void, _ZN4absl7debian312Notification6NotifyEv, (Notification * n), (n), n,
     nullptr)
WRAP(void, _ZNK4absl7debian312Notification19WaitForNotificationEv,
     (const Notification* n), (n), nullptr, n)
WRAP(
    bool,
    _ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE,
    (const Notification* n, Duration d), (n, d), nullptr, n)
WRAP(
    bool,
    _ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE,
    (const Notification* n, Time t), (n, t), nullptr, n)

}  // extern "C"
