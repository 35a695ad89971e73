// The start-up memory check (core/memory_budget.h): what a rank of `flywheel train` or `flywheel run`
// needs, against what the machine has, so a model too large is refused with both figures instead of
// a bare std::bad_alloc; model.d_model = 4000000000 (too large even to count in int64) included.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/memory_budget.h"
#include "launch/shape.h"
#include "parallel/plan.h"
#include "rl/flywheel_memory.h"
#include "test_util.h"

namespace flywheel {
namespace {

using testing::error_message;

Shape shape_of(const std::string& name, const std::vector<std::string>& overrides = {}) {
  return load_shape(std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/" + name + ".ini", overrides);
}

constexpr double kGiB = 1024.0 * 1024 * 1024;

TEST(MemoryBudget, FormatsFromBytesToPowersOfTen) {
  EXPECT_EQ(format_memory(812), "812 B");
  EXPECT_EQ(format_memory(13.0 * 1024 * 1024), "13.0 MiB");
  EXPECT_EQ(format_memory(1.8 * 1024 * kGiB), "1.8 TiB");
  EXPECT_EQ(format_memory(2.9e12 * kGiB), "2.9e+12 GiB");
}

TEST(MemoryBudget, ARankThatDoesNotFitIsRefusedWithBothFigures) {
  const MemoryNeed need{"trainer rank 3", {{"weights", 6 * kGiB}, {"activations", 2 * kGiB}, {"unused", 0}}};
  EXPECT_NO_THROW(check_memory_fits(need, {16 * kGiB, "test"}, 2, "advice"));  // 8 GiB each: fits exactly
  std::string message;
  try {
    check_memory_fits(need, {15 * kGiB, "MemAvailable in /proc/meminfo"}, 2, "add ranks");
  } catch (const InputError& e) {
    message = e.what();
  }
  EXPECT_EQ(message, "the model needs 8.0 GiB (weights 6.0 GiB, activations 2.0 GiB) on trainer rank 3, the machine "
                     "has 15.0 GiB available (MemAvailable in /proc/meminfo) for its 2 ranks: 7.5 GiB each: add ranks");
  EXPECT_NE(out_of_memory_note().find("trainer rank 3 was planned to need 8.0 GiB"), std::string::npos);
  EXPECT_NO_THROW(check_memory_fits(need, {0, "unknown"}, 1, ""));  // an unknown machine checks nothing
  EXPECT_GT(machine_memory().available, 0);
}

TEST(MemoryBudget, ATrainerRankNeedsWhatItsPlanSays) {
  const Shape s = shape_of("tiny-dense");
  const MemoryNeed need = trainer_memory_need(s.train_spec(), 0);
  const MemoryPlan plan = plan_rank(s.model, s.train.batch(), s.mesh, 0).memory;
  EXPECT_DOUBLE_EQ(need.total(), static_cast<double>(plan.total()) + rope_table_bytes(s.model));
  EXPECT_EQ(need.who, "trainer rank 0");
}

TEST(MemoryBudget, AModelTooLargeToCountStillComparesAsTooLarge) {
  const Shape s = shape_of("tiny-dense", {"--model.d_model=4000000000"});
  s.validate(1);
  const MemoryNeed need = trainer_memory_need(s.train_spec(), 0);
  EXPECT_GT(need.total(), 1e20);  // 16 bytes x ~2e20 parameters
  const std::string message = error_message([&] { check_memory_fits(need, machine_memory(), 1, "shrink it"); });
  EXPECT_NE(message.find("the model needs 2.9e+12 GiB"), std::string::npos) << message;
  EXPECT_NE(message.find("the machine has "), std::string::npos) << message;
  // A long max_seq_len: the RoPE table counts, and planning it does not allocate it.
  const Shape long_context = shape_of("tiny-dense", {"--model.max_seq_len=1000000000000"});
  EXPECT_GT(trainer_memory_need(long_context.train_spec(), 0).total(), 1e14);
}

TEST(MemoryBudget, FlywheelRanksCountPublishingAndServing) {
  const Shape s = shape_of("tiny-rl");
  const FlywheelSpec spec = s.flywheel_spec();
  const double trainer = trainer_memory_need(spec, 0).total();
  const double params = static_cast<double>(spec.model.total_params());
  EXPECT_DOUBLE_EQ(flywheel_memory_need(spec, 0).total(), trainer + 8 * params);  // fp32 copy + fp32 snapshot
  const MemoryNeed replica = flywheel_memory_need(spec, 1);
  EXPECT_EQ(replica.who, "replica 0");
  // fp32 weights, K and V for 32 slots x 64 positions x 2 kv heads x 32 of 4 layers, the RoPE table.
  EXPECT_DOUBLE_EQ(replica.total(), 4 * params + 2.0 * 4 * 32 * 64 * 2 * 32 * 4 + 64 * 32 * 4);
}

}  // namespace
}  // namespace flywheel
