#include "server/core/test_util/core_fixture.h"

#include <cstdio>
#include <cstdlib>

#include "tests/test_util.h"

namespace twinserve {
namespace testing {
namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "core_fixture: %s\n", why.c_str());
  std::abort();
}

}  // namespace

RegisterArgs AddSubArgs(const std::string& name) {
  RegisterArgs a;
  a.name = name;
  a.signature = AddSubSignature();
  return a;
}

CoreFixture::CoreFixture(std::string r, bool load)
    : root(r.empty() ? NewTempDir("store") : std::move(r)) {
  auto opened = ModelStore::Open(root);
  if (!opened.ok()) Die(std::string(opened.status().message()));
  store = std::move(*opened);
  schedulers = std::make_unique<SchedulerFactory>(SchedulerOptions{});
  registry = std::make_unique<ModelRegistry>(store.get(), schedulers.get(),
                                             RunnerOptions{});
  registrar = std::make_unique<Registrar>(store.get(), registry.get());
  traffic = std::make_unique<TrafficControl>(store.get(), registry.get());
  if (load) registry->LoadStoredModels();
}

StagedFile CoreFixture::Stage(const std::string& fixture) {
  auto staged = store->StageBytes(ReadFileOrDie(FixturePath(fixture)));
  if (!staged.ok()) Die(std::string(staged.status().message()));
  return *staged;
}

ModelStatus CoreFixture::RegisterAddSub(const std::string& name) {
  auto st = registrar->Register(AddSubArgs(name), Stage("add_sub.pt"));
  if (!st.ok()) Die(std::string(st.status().message()));
  return *st;
}

void CoreFixture::AddVariant(const std::string& name,
                             const std::string& variant) {
  auto st = registrar->RegisterVariant(name, variant, Stage("add_sub.pt"));
  if (!st.ok()) Die(std::string(st.status().message()));
}

}  // namespace testing
}  // namespace twinserve
