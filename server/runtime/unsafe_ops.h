// Operators a served model may not call: they read or write files or talk
// to the network, in the server's process and with its permissions
// (LibTorch 1.13's `aten::from_file` maps any file the server can read;
// `aten::save` writes anywhere it can). The list lives here and nowhere else.
//
// A model is checked twice when it is loaded: its archive's TorchScript
// source before torch::jit::load (which runs `__setstate__` methods, so a
// check after loading would come too late), then every graph of every
// method of every submodule after it, with calls inlined and control flow
// followed. Unless the process allowed them (AllowUnsafeOps), a model that
// calls one is refused with INVALID_ARGUMENT naming the operator.
#ifndef TWINSERVE_SERVER_RUNTIME_UNSAFE_OPS_H_
#define TWINSERVE_SERVER_RUNTIME_UNSAFE_OPS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace torch {
namespace jit {
struct Graph;
struct Module;
}  // namespace jit
}  // namespace torch

namespace twinserve {

struct UnsafeOp {
  // A qualified operator ("aten::from_file"), or a namespace ending in "::"
  // ("c10d::") for every operator in it.
  const char* name;
  const char* why;
};

// Every refused operator.
const std::vector<UnsafeOp>& UnsafeOps();

// Process-wide switch (--allow_unsafe_ops). Off by default.
void AllowUnsafeOps(bool allow);
bool UnsafeOpsAllowed();

// The archive at `path`: INVALID_ARGUMENT if its TorchScript source calls
// an unsafe operator; OK for a file that is not a TorchScript archive (the
// load that follows says what is wrong with it).
absl::Status CheckArchiveSource(const std::string& path);

// INVALID_ARGUMENT naming the first unsafe operator `graph` (or a block
// inside it) calls; `where` names the graph in the message.
absl::Status CheckGraph(const torch::jit::Graph& graph,
                        const std::string& where);

// CheckGraph over every method of `module` and its submodules, calls
// inlined.
absl::Status CheckModule(const torch::jit::Module& module);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_RUNTIME_UNSAFE_OPS_H_
