// Shape differences on resume (train/shape_change.h): compared by parsed value, listed key by key,
// and only the run-control keys, train.steps and [mesh] allowed.
#include <gtest/gtest.h>

#include "test_util.h"
#include "train/shape_change.h"

namespace flywheel {
namespace {

using testing::error_message;

constexpr const char* kRecorded =
    "# a comment\n[model]\nd_model = 64\nn_layers = 2\n\n[train]\nsteps = 20\nlr = 3e-3\ntie = true\n\n[mesh]\nfsdp = 2\n";

TEST(ShapeChange, SpellingCommentsAndOrderAreNotChanges) {
  const std::string same = "[mesh]\nfsdp=2\n[train]\nlr = 0.003   # the peak\ntie = yes\nsteps = 20\n[model]\n"
                           "n_layers = 2\nd_model = 64.0\n";
  EXPECT_TRUE(shape_changes(kRecorded, same, "shape.ini").empty());
}

TEST(ShapeChange, EveryDifferingKeyWithBothValues) {
  const std::string now = "[model]\nd_model = 64\n\n[train]\nsteps = 40\nlr = 1e-3\ntie = true\nseed = 7\n\n"
                          "[mesh]\nfsdp = 2\n";
  const std::vector<ShapeChange> changes = shape_changes(kRecorded, now, "shape.ini");
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(change_text(changes[0]), "model.n_layers: 2 -> (not set)");
  EXPECT_EQ(change_text(changes[1]), "train.lr: 3e-3 -> 1e-3");
  EXPECT_EQ(change_text(changes[2]), "train.seed: (not set) -> 7");
  EXPECT_EQ(change_text(changes[3]), "train.steps: 20 -> 40");
}

TEST(ShapeChange, OnlyRunControlStepsAndMeshMayChange) {
  for (const char* key : {"train.steps", "mesh.fsdp", "mesh.pp", "mesh.serve", "train.threads", "train.log_every",
                          "train.checkpoint_every", "train.keep_last", "train.out_dir", "train.run_name", "train.resume"})
    EXPECT_TRUE(resumable_key(key)) << key;
  for (const char* key : {"train.lr", "train.seed", "train.init_from", "train.micro_batch", "model.d_model",
                          "data.source", "rl.lr", "meshy.fsdp"})
    EXPECT_FALSE(resumable_key(key)) << key;
  EXPECT_NE(resumable_keys_text().find("every [mesh] key, train.steps"), std::string::npos);
}

TEST(ShapeChange, RaisedStepsStretchTheSchedule) {
  TrainConfig now;
  now.steps = 40;
  now.warmup_steps = 2;
  const std::string text = schedule_change_text(now, 20, 20);
  EXPECT_NE(text.find("train.steps: 20 -> 40: the learning-rate schedule (warmup 2 steps"), std::string::npos) << text;
  EXPECT_NE(text.find("stretches to the new length: step 21 runs at lr "), std::string::npos) << text;
  char old_lr[32];
  std::snprintf(old_lr, sizeof(old_lr), "not %.3e as before", now.min_lr);  // step 21 of 20: past the end
  EXPECT_NE(text.find(old_lr), std::string::npos) << text;
  EXPECT_NE(schedule_change_text(now, 80, 10).find("shrinks"), std::string::npos);
}

TEST(ShapeChange, TextThatIsNotIniIsNamed) {
  const std::string message = error_message([] { shape_changes("[model\nd = 1\n", kRecorded, "run/shape.ini"); });
  EXPECT_NE(message.find("the shape text of run/shape.ini is not INI"), std::string::npos) << message;
}

}  // namespace
}  // namespace flywheel
