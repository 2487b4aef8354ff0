#include "server/runtime/unsafe_ops.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <atomic>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace twinserve {
namespace {

std::atomic<bool> g_allowed{false};

constexpr char kAllowHint[] =
    "; models may not touch files or the network from inside the server "
    "(an operator can allow it with --allow_unsafe_ops)";

// The op `kind` matches, or null.
const UnsafeOp* Match(absl::string_view kind) {
  for (const UnsafeOp& op : UnsafeOps()) {
    const absl::string_view name = op.name;
    if (absl::EndsWith(name, "::") ? absl::StartsWith(kind, name)
                                   : kind == name) {
      return &op;
    }
  }
  return nullptr;
}

// How TorchScript's printer spells a call of `op` in saved source:
// aten ops as torch.<name>( or ops.aten.<name>(, prim ops by bare name,
// others as ops.<ns>.<name>(.
std::vector<std::string> SourceSpellings(const UnsafeOp& op) {
  const absl::string_view name = op.name;
  const size_t sep = name.find("::");
  const absl::string_view ns = name.substr(0, sep);
  const absl::string_view base = name.substr(sep + 2);
  if (base.empty()) return {absl::StrCat("ops.", ns, ".")};
  if (ns == "aten") {
    return {absl::StrCat("torch.", base, "("),
            absl::StrCat("ops.aten.", base, "(")};
  }
  if (ns == "prim") {
    return {absl::StrCat(base, "("), absl::StrCat("ops.prim.", base, "(")};
  }
  return {absl::StrCat("ops.", ns, ".", base, "(")};
}

absl::Status Refuse(const UnsafeOp& op, const std::string& where) {
  return absl::InvalidArgumentError(absl::StrCat(
      "the model calls ", op.name, " (", op.why, ") in ", where, kAllowHint));
}

absl::Status CheckBlock(const torch::jit::Block* block,
                        const std::string& where) {
  for (const torch::jit::Node* node : block->nodes()) {
    if (const UnsafeOp* op = Match(node->kind().toQualString())) {
      return Refuse(*op, where);
    }
    for (const torch::jit::Block* inner : node->blocks()) {
      if (absl::Status st = CheckBlock(inner, where); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<UnsafeOp>& UnsafeOps() {
  static const auto* ops = new std::vector<UnsafeOp>{
      {"aten::from_file", "maps a file from the server's disk"},
      {"aten::save", "writes a file on the server's disk"},
      {"prim::rpc_async", "calls another process over torch.distributed.rpc"},
      {"prim::rpc_sync", "calls another process over torch.distributed.rpc"},
      {"prim::rpc_remote", "calls another process over torch.distributed.rpc"},
      {"c10d::", "collective communication over the network"},
  };
  return *ops;
}

void AllowUnsafeOps(bool allow) { g_allowed.store(allow); }
bool UnsafeOpsAllowed() { return g_allowed.load(); }

absl::Status CheckArchiveSource(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> sources;  // record, text
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const std::string& record : reader.getAllRecords()) {
      if (!absl::StartsWith(record, "code/") ||
          !absl::EndsWith(record, ".py")) {
        continue;
      }
      auto [data, size] = reader.getRecord(record);
      sources.emplace_back(
          record, std::string(static_cast<const char*>(data.get()), size));
    }
  } catch (const std::exception&) {
    return absl::OkStatus();  // not an archive: torch::jit::load says so
  }
  for (const auto& [record, text] : sources) {
    for (const UnsafeOp& op : UnsafeOps()) {
      for (const std::string& spelling : SourceSpellings(op)) {
        size_t at = text.find(spelling);
        // A bare prim name must not be the tail of a longer identifier.
        while (at != std::string::npos && at > 0 &&
               (absl::ascii_isalnum(text[at - 1]) || text[at - 1] == '_') &&
               spelling.rfind("ops.", 0) != 0 &&
               spelling.rfind("torch.", 0) != 0) {
          at = text.find(spelling, at + 1);
        }
        if (at != std::string::npos) {
          return Refuse(op, absl::StrCat("its source ", record));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckGraph(const torch::jit::Graph& graph,
                        const std::string& where) {
  return CheckBlock(graph.block(), where);
}

absl::Status CheckModule(const torch::jit::Module& module) {
  try {
    for (const torch::jit::NameModule& sub : module.named_modules()) {
      for (const torch::jit::Method& method : sub.value.get_methods()) {
        std::shared_ptr<torch::jit::Graph> graph = method.graph()->copy();
        torch::jit::Inline(*graph);
        const std::string where =
            sub.name.empty() ? absl::StrCat(method.name())
                             : absl::StrCat(sub.name, ".", method.name());
        if (absl::Status st = CheckGraph(*graph, where); !st.ok()) return st;
      }
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot inspect the model's graphs: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace twinserve
