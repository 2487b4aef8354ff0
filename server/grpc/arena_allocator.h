// A gRPC MessageAllocator that puts a callback unary call's request and
// response on one protobuf Arena whose first block lives inside the holder:
// parsing the request and building the response become bump-pointer
// allocations, all released at once when the call ends. (Large string
// payloads still get their own heap buffer: std::string does not use the
// arena.)
#ifndef TWINSERVE_SERVER_GRPC_ARENA_ALLOCATOR_H_
#define TWINSERVE_SERVER_GRPC_ARENA_ALLOCATOR_H_

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

namespace twinserve {

template <typename Request, typename Response, size_t kInlineBytes = 4096>
class ArenaMessageAllocator : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    return new Holder;
  }

 private:
  class Holder : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options(block_)) {
      this->set_request(
          google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(
          google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options(char* block) {
      google::protobuf::ArenaOptions o;
      o.initial_block = block;
      o.initial_block_size = kInlineBytes;
      return o;
    }
    alignas(16) char block_[kInlineBytes];
    google::protobuf::Arena arena_;  // after block_: destroyed first
  };
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_ARENA_ALLOCATOR_H_
