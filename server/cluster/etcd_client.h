// EtcdClient: the few etcd v3 operations twinserve's cluster mode needs,
// over etcd's own gRPC API (stubs generated from Debian's
// golang-etcd-server-dev protos, proto/BUILD).
//
// Every write that matters is conditional: PutIf/DeleteIf compare the key's
// modification revision in one etcd transaction, so two replicas that read
// the same record cannot both commit a change to it (ABORTED for the
// loser). Revisions are etcd's: one counter for the whole cluster, higher
// for every later write.
//
// Errors: etcd unreachable or not answering within the timeout is
// UNAVAILABLE (or DEADLINE_EXCEEDED from gRPC, mapped to UNAVAILABLE), so
// callers can tell "try again later" from a refused write.
//
// Thread-safe. Watches run on a thread of their own each.
#ifndef TWINSERVE_SERVER_CLUSTER_ETCD_CLIENT_H_
#define TWINSERVE_SERVER_CLUSTER_ETCD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace twinserve {

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct EtcdEvent {
  bool deleted = false;    // else a put
  EtcdKeyValue kv;         // for a delete: key and mod_revision only
  std::string prev_value;  // the value before this change, if any
};

// Keys under a prefix as of one revision of the store.
struct EtcdSnapshot {
  std::vector<EtcdKeyValue> kvs;  // sorted by key
  int64_t revision = 0;
};

struct EtcdOptions {
  // HOST:PORT, comma-separated for several members.
  std::string endpoints;
  // Per call; a call that takes longer is UNAVAILABLE.
  absl::Duration timeout = absl::Seconds(3);
  // TLS to etcd (PEM files): with `ca_file` set, the connection is TLS and
  // etcd's certificate must chain to it; `cert_file` and `key_file` are
  // this client's certificate for etcd's --client-cert-auth.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

class EtcdWatch;

class EtcdClient {
 public:
  // Connects lazily: succeeds even while etcd is down (calls then fail
  // UNAVAILABLE until it answers). INVALID_ARGUMENT for malformed
  // endpoints, a TLS file that cannot be read, or a certificate without
  // its key.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(
      const EtcdOptions& options);
  ~EtcdClient();

  const EtcdOptions& options() const { return options_; }

  absl::StatusOr<std::optional<EtcdKeyValue>> Get(const std::string& key);
  absl::StatusOr<EtcdSnapshot> List(const std::string& prefix);

  // Writes `value` if the key's modification revision is `expected` (0:
  // the key must not exist). Returns the write's revision; ABORTED if the
  // key moved. `lease` 0: none.
  absl::StatusOr<int64_t> PutIf(const std::string& key, absl::string_view value,
                                int64_t expected, int64_t lease = 0);
  // Unconditional, for keys only one writer owns (a replica's statistics).
  absl::StatusOr<int64_t> Put(const std::string& key, absl::string_view value,
                              int64_t lease = 0);
  // Deletes the key if its modification revision is `expected`; ABORTED if
  // it moved, NOT_FOUND if absent.
  absl::Status DeleteIf(const std::string& key, int64_t expected);

  // Leases: keys written under one vanish when it expires.
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl);
  // NOT_FOUND once the lease has expired.
  absl::Status KeepAlive(int64_t lease);
  absl::Status RevokeLease(int64_t lease);

  // Calls `on_events` (on the watch's thread, in revision order) for every
  // change under `prefix` after revision `after`. A lost connection is
  // resumed from the last revision seen, so no event is missed or repeated;
  // if etcd compacted past it, `on_resync` is called instead and returns
  // the revision to go on after (the caller re-lists). Stops when the
  // returned watch is destroyed.
  std::unique_ptr<EtcdWatch> Watch(
      const std::string& prefix, int64_t after,
      std::function<void(const std::vector<EtcdEvent>&)> on_events,
      std::function<int64_t()> on_resync);

  struct Impl;

 private:
  EtcdClient(EtcdOptions options, std::unique_ptr<Impl> impl);
  const EtcdOptions options_;
  std::unique_ptr<Impl> impl_;
};

class EtcdWatch {
 public:
  virtual ~EtcdWatch() = default;
  // Whether the watch stream is established now (false while etcd is
  // unreachable).
  virtual bool connected() const = 0;
};

// The end of the key range that holds every key starting with `prefix`.
std::string PrefixRangeEnd(const std::string& prefix);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CLUSTER_ETCD_CLIENT_H_
