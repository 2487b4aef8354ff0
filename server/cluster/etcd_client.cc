#include "server/cluster/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/thread_name.h"

namespace twinserve {

namespace pb = etcdserverpb;

namespace {

absl::Status FromEtcd(const grpc::Status& st, absl::string_view what) {
  if (st.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat("etcd ", what, ": ", st.error_message());
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return absl::UnavailableError(msg);
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(msg);
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(msg);
    case grpc::StatusCode::FAILED_PRECONDITION:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

struct EtcdClient::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Lease::Stub> lease;

  absl::StatusOr<pb::TxnResponse> IfUnchanged(
      const std::string& key, int64_t expected, absl::Duration timeout,
      absl::string_view what, const std::function<void(pb::RequestOp*)>& op);
};

namespace {

EtcdKeyValue FromPb(const mvccpb::KeyValue& kv) {
  EtcdKeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.lease = kv.lease();
  return out;
}

class WatchImpl : public EtcdWatch {
 public:
  WatchImpl(EtcdClient::Impl* client, std::string prefix, int64_t after,
            std::function<void(const std::vector<EtcdEvent>&)> on_events,
            std::function<int64_t()> on_resync)
      : client_(client),
        prefix_(std::move(prefix)),
        next_(after + 1),
        on_events_(std::move(on_events)),
        on_resync_(std::move(on_resync)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~WatchImpl() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
    }
    thread_.join();
  }
  bool connected() const override { return connected_.load(); }

 private:
  void Loop() {
    SetThreadName("ts-etcd-watch");
    absl::Duration backoff = absl::Milliseconds(50);
    while (true) {
      grpc::ClientContext ctx;
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
        ctx_ = &ctx;
      }
      if (RunStream(&ctx)) backoff = absl::Milliseconds(50);
      connected_ = false;
      {
        absl::MutexLock lock(&mu_);
        ctx_ = nullptr;
        // Wait before reconnecting, waking early on stop.
        auto stopped = [this]()
                           ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
        if (mu_.AwaitWithTimeout(absl::Condition(&stopped), backoff)) return;
      }
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
  }

  // One stream, until it breaks. True if it delivered anything.
  bool RunStream(grpc::ClientContext* ctx) {
    // Wait for the connection rather than failing at once while etcd
    // restarts.
    ctx->set_wait_for_ready(false);
    auto stream = client_->watch->Watch(ctx);
    pb::WatchRequest req;
    pb::WatchCreateRequest* create = req.mutable_create_request();
    create->set_key(prefix_);
    create->set_range_end(PrefixRangeEnd(prefix_));
    create->set_start_revision(next_);
    create->set_prev_kv(true);
    if (!stream->Write(req)) {
      stream->Finish().IgnoreError();
      return false;
    }
    bool delivered = false;
    pb::WatchResponse resp;
    while (stream->Read(&resp)) {
      if (resp.created()) {
        connected_ = true;
        delivered = true;
      }
      if (resp.compact_revision() > 0) {
        // Events we never saw are gone: the owner re-lists.
        TS_LOG(WARNING) << "etcd watch on " << prefix_
                        << ": compacted past revision " << next_
                        << "; re-listing";
        next_ = on_resync_() + 1;
        ctx->TryCancel();
        break;
      }
      if (resp.canceled()) {
        TS_LOG(WARNING) << "etcd watch on " << prefix_
                        << " canceled: " << resp.cancel_reason();
        break;
      }
      if (resp.events_size() == 0) continue;
      std::vector<EtcdEvent> events;
      events.reserve(resp.events_size());
      for (const mvccpb::Event& e : resp.events()) {
        EtcdEvent out;
        out.deleted = e.type() == mvccpb::Event::DELETE;
        out.kv = FromPb(e.kv());
        if (e.has_prev_kv()) out.prev_value = e.prev_kv().value();
        next_ = std::max(next_, out.kv.mod_revision + 1);
        events.push_back(std::move(out));
      }
      on_events_(events);
      delivered = true;
    }
    stream->Finish().IgnoreError();
    return delivered;
  }

  EtcdClient::Impl* const client_;
  const std::string prefix_;
  int64_t next_;  // only the watch thread touches it
  const std::function<void(const std::vector<EtcdEvent>&)> on_events_;
  const std::function<int64_t()> on_resync_;
  std::atomic<bool> connected_{false};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace

std::string PrefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    unsigned char& c = reinterpret_cast<unsigned char&>(end.back());
    if (c < 0xff) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    const EtcdOptions& options) {
  std::vector<std::string> hosts =
      absl::StrSplit(options.endpoints, ',', absl::SkipWhitespace());
  if (hosts.empty()) {
    return absl::InvalidArgumentError("etcd endpoints are empty");
  }
  for (const std::string& h : hosts) {
    if (h.find(':') == std::string::npos || h.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "etcd endpoint '", h, "' is not HOST:PORT (no scheme, no path)"));
    }
  }
  // Several members: gRPC's ipv4/dns resolution would pin one; a static
  // list with round robin spreads calls and survives a member's loss.
  std::string target = hosts.size() == 1
                           ? hosts[0]
                           : absl::StrCat("ipv4:", absl::StrJoin(hosts, ","));
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!options.ca_file.empty()) {
    if (options.cert_file.empty() != options.key_file.empty()) {
      return absl::InvalidArgumentError(
          "etcd TLS: a client certificate needs its key and a key its "
          "certificate");
    }
    grpc::SslCredentialsOptions ssl;
    auto read = [](const std::string& path, std::string* out) {
      auto bytes = ReadFile(path);
      if (!bytes.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "etcd TLS: cannot read ", path, ": ", bytes.status().message()));
      }
      *out = std::move(*bytes);
      return absl::OkStatus();
    };
    TS_RETURN_IF_ERROR(read(options.ca_file, &ssl.pem_root_certs));
    if (!options.cert_file.empty()) {
      TS_RETURN_IF_ERROR(read(options.cert_file, &ssl.pem_cert_chain));
      TS_RETURN_IF_ERROR(read(options.key_file, &ssl.pem_private_key));
    }
    credentials = grpc::SslCredentials(ssl);
  } else if (!options.cert_file.empty() || !options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "etcd TLS: a client certificate needs the CA that signed etcd's");
  }
  grpc::ChannelArguments args;
  if (hosts.size() > 1) args.SetLoadBalancingPolicyName("round_robin");
  // Reconnect quickly after an etcd restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto impl = std::make_unique<Impl>();
  impl->channel = grpc::CreateCustomChannel(target, credentials, args);
  impl->kv = pb::KV::NewStub(impl->channel);
  impl->watch = pb::Watch::NewStub(impl->channel);
  impl->lease = pb::Lease::NewStub(impl->channel);
  return std::unique_ptr<EtcdClient>(new EtcdClient(options, std::move(impl)));
}

EtcdClient::EtcdClient(EtcdOptions options, std::unique_ptr<Impl> impl)
    : options_(std::move(options)), impl_(std::move(impl)) {}

EtcdClient::~EtcdClient() = default;

absl::StatusOr<std::optional<EtcdKeyValue>> EtcdClient::Get(
    const std::string& key) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  pb::RangeRequest req;
  req.set_key(key);
  pb::RangeResponse resp;
  absl::Status st = FromEtcd(impl_->kv->Range(&ctx, req, &resp), "get");
  if (!st.ok()) return st;
  if (resp.kvs_size() == 0) return std::optional<EtcdKeyValue>();
  return std::optional<EtcdKeyValue>(FromPb(resp.kvs(0)));
}

absl::StatusOr<EtcdSnapshot> EtcdClient::List(const std::string& prefix) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  pb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixRangeEnd(prefix));
  req.set_sort_order(pb::RangeRequest::ASCEND);
  req.set_sort_target(pb::RangeRequest::KEY);
  pb::RangeResponse resp;
  absl::Status st = FromEtcd(impl_->kv->Range(&ctx, req, &resp), "list");
  if (!st.ok()) return st;
  EtcdSnapshot out;
  out.revision = resp.header().revision();
  for (const auto& kv : resp.kvs()) out.kvs.push_back(FromPb(kv));
  return out;
}

// One transaction: `op` if `key`'s modification revision is `expected`.
// ABORTED if it moved.
absl::StatusOr<pb::TxnResponse> EtcdClient::Impl::IfUnchanged(
    const std::string& key, int64_t expected, absl::Duration timeout,
    absl::string_view what, const std::function<void(pb::RequestOp*)>& op) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  pb::TxnRequest req;
  pb::Compare* cmp = req.add_compare();
  cmp->set_key(key);
  cmp->set_target(pb::Compare::MOD);
  cmp->set_result(pb::Compare::EQUAL);
  cmp->set_mod_revision(expected);
  op(req.add_success());
  pb::TxnResponse resp;
  absl::Status st = FromEtcd(kv->Txn(&ctx, req, &resp), what);
  if (!st.ok()) return st;
  if (!resp.succeeded()) {
    return absl::AbortedError(
        absl::StrCat("etcd key ", key, " changed meanwhile (expected revision ",
                     expected, ")"));
  }
  return resp;
}

absl::StatusOr<int64_t> EtcdClient::PutIf(const std::string& key,
                                          absl::string_view value,
                                          int64_t expected, int64_t lease) {
  auto resp = impl_->IfUnchanged(
      key, expected, options_.timeout, "write", [&](pb::RequestOp* op) {
        pb::PutRequest* put = op->mutable_request_put();
        put->set_key(key);
        put->set_value(std::string(value));
        put->set_lease(lease);
      });
  if (!resp.ok()) return resp.status();
  return resp->header().revision();
}

absl::StatusOr<int64_t> EtcdClient::Put(const std::string& key,
                                        absl::string_view value,
                                        int64_t lease) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(std::string(value));
  req.set_lease(lease);
  pb::PutResponse resp;
  absl::Status st = FromEtcd(impl_->kv->Put(&ctx, req, &resp), "put");
  if (!st.ok()) return st;
  return resp.header().revision();
}

absl::Status EtcdClient::DeleteIf(const std::string& key, int64_t expected) {
  auto resp = impl_->IfUnchanged(
      key, expected, options_.timeout, "delete", [&](pb::RequestOp* op) {
        op->mutable_request_delete_range()->set_key(key);
      });
  if (!resp.ok()) return resp.status();
  if (resp->responses_size() == 0 ||
      resp->responses(0).response_delete_range().deleted() == 0) {
    return absl::NotFoundError(absl::StrCat("etcd key ", key, " is absent"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> EtcdClient::GrantLease(absl::Duration ttl) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  pb::LeaseGrantRequest req;
  req.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(ttl)));
  pb::LeaseGrantResponse resp;
  absl::Status st =
      FromEtcd(impl_->lease->LeaseGrant(&ctx, req, &resp), "lease grant");
  if (!st.ok()) return st;
  if (!resp.error().empty()) {
    return absl::UnavailableError(
        absl::StrCat("etcd lease grant: ", resp.error()));
  }
  return resp.id();
}

absl::Status EtcdClient::KeepAlive(int64_t lease) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  auto stream = impl_->lease->LeaseKeepAlive(&ctx);
  pb::LeaseKeepAliveRequest req;
  req.set_id(lease);
  pb::LeaseKeepAliveResponse resp;
  bool got = stream->Write(req) && stream->Read(&resp);
  stream->WritesDone();
  ctx.TryCancel();
  stream->Finish().IgnoreError();
  if (!got) {
    return absl::UnavailableError("etcd lease keep-alive: no answer");
  }
  if (resp.ttl() <= 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd lease ", lease, " has expired"));
  }
  return absl::OkStatus();
}

absl::Status EtcdClient::RevokeLease(int64_t lease) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  pb::LeaseRevokeRequest req;
  req.set_id(lease);
  pb::LeaseRevokeResponse resp;
  return FromEtcd(impl_->lease->LeaseRevoke(&ctx, req, &resp), "lease revoke");
}

std::unique_ptr<EtcdWatch> EtcdClient::Watch(
    const std::string& prefix, int64_t after,
    std::function<void(const std::vector<EtcdEvent>&)> on_events,
    std::function<int64_t()> on_resync) {
  return std::make_unique<WatchImpl>(
      impl_.get(), prefix, after, std::move(on_events), std::move(on_resync));
}

}  // namespace twinserve
