#include "server/runtime/unsafe_ops.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/runtime/runner.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;

Signature OneInOneOut() {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"y", DataType::kFp32, {-1, 4}}};
  return s;
}

// A scripted module compiled from `source`, saved to a file.
std::string Saved(const std::string& source, const std::string& dir,
                  const std::string& name) {
  torch::jit::Module m("m");
  m.register_buffer("w", torch::zeros({4}));
  m.define(source);
  const std::string path = dir + "/" + name + ".pt";
  m.save(path);
  return path;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Every entry of the list is refused where it appears in a graph, inside
// control flow too, with a message that names it.
TEST(UnsafeOpsTest, EveryListedOperatorIsRefusedInAGraph) {
  for (const UnsafeOp& op : UnsafeOps()) {
    std::string name = op.name;
    if (name.size() > 2 && name.substr(name.size() - 2) == "::") {
      name += "send";  // a namespace entry: any operator in it
    }
    torch::jit::Graph graph;
    torch::jit::Value* cond =
        graph.addInput("cond")->setType(c10::BoolType::get());
    torch::jit::Node* branch =
        graph.insertNode(graph.create(c10::prim::If, {cond}, 0));
    branch->addBlock();
    torch::jit::Block* then = branch->addBlock();
    then->appendNode(graph.create(c10::Symbol::fromQualString(name), {}, 0));
    absl::Status st = CheckGraph(graph, "forward");
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(st.message(), HasSubstr(op.name));
    EXPECT_THAT(st.message(), HasSubstr("--allow_unsafe_ops"));
  }
  torch::jit::Graph safe;
  safe.insertNode(safe.create(c10::Symbol::fromQualString("aten::add"), {}, 0));
  EXPECT_TRUE(CheckGraph(safe, "forward").ok());
}

TEST(UnsafeOpsTest, ModelsThatTouchFilesAreRefusedAtLoad) {
  const std::string dir = NewTempDir("unsafe");
  const std::string secret = dir + "/secret";
  std::ofstream(secret) << "0123456789abcdef";
  const std::string leak = dir + "/leak.pt";
  struct Case {
    const char* op;
    std::string source;
  } cases[] = {
      {"aten::from_file",
       "def forward(self, x):\n"
       "    y = torch.from_file('" +
           secret +
           "', False, 4, dtype=6)\n"
           "    return x + y\n"},
      {"aten::save",
       "def forward(self, x):\n"
       "    torch.save(x, '" +
           leak +
           "')\n"
           "    return x\n"},
  };
  for (const Case& c : cases) {
    const std::string path = Saved(c.source, dir, "m");
    auto runner = Runner::Load(path, OneInOneOut(), {});
    ASSERT_FALSE(runner.ok()) << c.op;
    EXPECT_EQ(runner.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(runner.status().message(), HasSubstr(c.op));
  }
  EXPECT_FALSE(Exists(leak));  // the warm-up forward never ran
}

// Loading runs __setstate__: the source is checked before it can.
TEST(UnsafeOpsTest, SetstateIsCheckedBeforeLoadingRunsIt) {
  const std::string dir = NewTempDir("unsafe");
  const std::string leak = dir + "/setstate_ran.pt";
  const std::string path = Saved(
      "def forward(self, x):\n"
      "    return x + self.w\n"
      "def __getstate__(self):\n"
      "    return (self.w, 0)\n"
      "def __setstate__(self, state: Tuple[Tensor, int]):\n"
      "    torch.save(state[0], '" +
          leak +
          "')\n"
          "    self.w = state[0]\n",
      dir, "setstate");
  auto runner = Runner::Load(path, OneInOneOut(), {});
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner.status().message(), HasSubstr("aten::save"));
  EXPECT_FALSE(Exists(leak));
}

// The graph check sees calls into submodules and inside branches (the
// source check aside: a module built in memory has no archive).
TEST(UnsafeOpsTest, SubmodulesAndBranchesAreFollowed) {
  torch::jit::Module inner("inner");
  inner.define(
      "def forward(self, x):\n"
      "    if bool(x.sum() > 0):\n"
      "        torch.save(x, '/nonexistent/x')\n"
      "    return x\n");
  torch::jit::Module outer("outer");
  outer.register_module("inner", inner);
  outer.define(
      "def forward(self, x):\n"
      "    return self.inner.forward(x) * 2\n");
  absl::Status st = CheckModule(outer);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("aten::save"));
  EXPECT_THAT(st.message(), HasSubstr("in forward"));
}

TEST(UnsafeOpsTest, TheOperatorCanAllowThem) {
  const std::string dir = NewTempDir("unsafe");
  const std::string secret = dir + "/secret";
  std::ofstream(secret) << "0123456789abcdef";
  const std::string path = Saved(
      "def forward(self, x):\n"
      "    y = torch.from_file('" +
          secret +
          "', False, 4, dtype=6)\n"
          "    return x + y\n",
      dir, "allowed");
  AllowUnsafeOps(true);
  auto runner = Runner::Load(path, OneInOneOut(), {});
  AllowUnsafeOps(false);
  EXPECT_TRUE(runner.ok()) << runner.status();
  // Ordinary models pass the check.
  EXPECT_TRUE(Runner::Load(FixturePath("add_sub.pt"),
                           twinserve::testing::AddSubSignature(), {})
                  .ok());
}

}  // namespace
}  // namespace twinserve
