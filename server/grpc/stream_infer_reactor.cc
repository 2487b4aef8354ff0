#include "server/grpc/stream_infer_reactor.h"

#include <algorithm>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/grpc/oip_codec.h"

namespace twinserve {
namespace {

class StreamInferReactor
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse> {
 public:
  StreamInferReactor(InferenceEngine* engine, SharedMemoryScope shm,
                     int max_in_flight)
      : engine_(engine),
        shm_(std::move(shm)),
        max_in_flight_(std::max(1, max_in_flight)) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    auto request =
        std::make_shared<inference::ModelInferRequest>(std::move(incoming_));
    incoming_.Clear();
    bool over = false;
    {
      absl::MutexLock lock(&mu_);
      over = pending_ >= max_in_flight_;
      ++pending_;
    }
    std::shared_ptr<SharedMemoryUse> use;
    auto decoded =
        over ? absl::StatusOr<InferRequest>(absl::ResourceExhaustedError(
                   absl::StrCat(max_in_flight_,
                                " requests of this stream are in flight, the "
                                "limit (--max_stream_in_flight=",
                                max_in_flight_, "); wait for answers")))
             : DecodeInferRequest(*request, &shm_, &use);
    if (!decoded.ok()) {
      Complete(*request, decoded.status(), nullptr);
    } else {
      engine_->Infer(std::move(*decoded),
                     [this, request, use](absl::StatusOr<InferResult> result) {
                       Complete(*request, std::move(result), use.get());
                     });
    }
    {
      absl::MutexLock lock(&mu_);
      if (writes_.size() >= static_cast<size_t>(max_in_flight_)) {
        read_paused_ = true;  // OnWriteDone reads on
        return;
      }
    }
    StartRead(&incoming_);
  }

  void OnWriteDone(bool /*ok*/) override {
    absl::MutexLock lock(&mu_);
    writes_.pop_front();
    if (read_paused_ && writes_.size() < static_cast<size_t>(max_in_flight_)) {
      read_paused_ = false;
      StartRead(&incoming_);
    }
    if (!writes_.empty()) {
      StartWrite(writes_.front().get());
    } else {
      writing_ = false;
      MaybeFinishLocked();
    }
  }

  void OnDone() override { delete this; }

 private:
  void Complete(const inference::ModelInferRequest& request,
                absl::StatusOr<InferResult> result,
                const SharedMemoryUse* use) {
    auto response = std::make_unique<inference::ModelStreamInferResponse>();
    if (result.ok()) {
      absl::Status st = EncodeInferResponse(
          request, *result, response->mutable_infer_response(), use);
      if (!st.ok()) result = st;
    }
    if (!result.ok()) {
      response->Clear();  // a failed encode may have filled part of it
      response->set_error_message(std::string(result.status().message()));
      response->mutable_infer_response()->set_model_name(request.model_name());
      response->mutable_infer_response()->set_id(request.id());
    }
    absl::MutexLock lock(&mu_);
    --pending_;
    writes_.push_back(std::move(response));
    if (!writing_) {
      writing_ = true;
      StartWrite(writes_.front().get());
    }
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reads_done_ && pending_ == 0 && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  InferenceEngine* const engine_;
  const SharedMemoryScope shm_;
  const int max_in_flight_;
  inference::ModelInferRequest incoming_;  // only touched by the read chain
  absl::Mutex mu_;
  std::deque<std::unique_ptr<inference::ModelStreamInferResponse>> writes_
      ABSL_GUARDED_BY(mu_);
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
NewStreamInferReactor(InferenceEngine* engine, SharedMemoryScope shm,
                      int max_in_flight) {
  return new StreamInferReactor(engine, std::move(shm), max_in_flight);
}

}  // namespace twinserve
