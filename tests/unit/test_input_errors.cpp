// Input errors (core/error.h): a check of the user's input throws an InputError whose message names
// the input and what is allowed, without the "src/file.cpp:line: " prefix of internal errors (kept
// in origin()). Every floating-point key of [model], [train] and [rl] is refused when infinite or NaN
// (train.lr = inf used to pass validation and fail at step 1), and `flywheel run` checks that
// rl.max_new_tokens leaves the task's longest prompt room in model.max_seq_len and train.seq_len.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/tasks.h"
#include "launch/shape.h"
#include "parallel/mesh_rules.h"

namespace flywheel {
namespace {

// The InputError `body` throws; a test failure if it throws anything else or nothing.
InputError input_error(const std::function<void()>& body) {
  try {
    body();
  } catch (const InputError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected an InputError, got: " << e.what();
    return InputError("");
  }
  ADD_FAILURE() << "expected an InputError, nothing was thrown";
  return InputError("");
}

void expect_plain(const InputError& e, const std::string& expected) {
  const std::string message = e.what();
  EXPECT_NE(message.find(expected), std::string::npos) << message;
  EXPECT_EQ(message.find("src/"), std::string::npos) << "a source location in a user-facing message: " << message;
}

Shape shape_of(const std::string& name, const std::vector<std::string>& overrides = {}) {
  return load_shape(std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/" + name + ".ini", overrides);
}

TEST(InputError, HasNoSourceLocationButKeepsItsOrigin) {
  const InputError e = input_error([] { FW_INPUT_CHECK(1 + 1 == 3, "train.steps = ", 3, ": must be even"); });
  EXPECT_STREQ(e.what(), "train.steps = 3: must be even");
  EXPECT_NE(e.origin().find("tests/unit/test_input_errors.cpp:"), std::string::npos) << e.origin();
  // Internal errors keep the prefix, and are not input errors.
  try {
    FW_CHECK(false, "a broken invariant");
  } catch (const InputError&) {
    ADD_FAILURE() << "FW_CHECK threw an InputError";
  } catch (const Error& internal) {
    EXPECT_NE(std::string(internal.what()).find("tests/unit/test_input_errors.cpp:"), std::string::npos)
        << internal.what();
  }
}

TEST(InputError, ConfigValidationsAreInputErrors) {
  Shape s = shape_of("tiny-dense");
  s.model.n_heads = 5;
  expect_plain(input_error([&] { s.model.validate(); }), "model.n_heads = 5 does not divide model.d_model = 128");
  s = shape_of("tiny-dense", {"--train.micro_batch=3", "--mesh.fsdp=2"});
  expect_plain(input_error([&] { check_mesh_fits(s.model, s.train.batch(), s.mesh); }),
               "train.micro_batch = 3 is not divisible by mesh.fsdp = 2");
  s = shape_of("tiny-dense", {"--mesh.ep=3"});
  expect_plain(input_error([&] { s.mesh.validate(); }), "mesh.ep = 3 does not divide");
  s = shape_of("tiny-dense", {"--train.resume=sometimes"});
  expect_plain(input_error([&] { s.validate(1); }), "train.resume = 'sometimes': allowed values are auto, never");
  expect_plain(input_error([] { make_task("sort", 2); }), "unknown task 'sort'; allowed tasks: addition, reverse");
  expect_plain(input_error([] { make_task("addition", 19); }), "data.task_max_digits = 19 is out of range");
  const Shape rl = shape_of("tiny-rl", {"--rl.swap=never"});
  expect_plain(input_error([&] { rl.flywheel_spec().validate(2); }), "rl.swap = 'never': allowed values are sync, async");
}

// One floating-point key of a shape, set on the command line.
struct FloatKey {
  std::string shape, key;
};

TEST(InputError, EveryFloatingPointKeyMustBeFinite) {
  const std::vector<FloatKey> keys = {
      {"tiny-dense", "model.rope_theta"}, {"tiny-dense", "model.norm_eps"}, {"tiny-dense", "model.init_std"},
      {"tiny-dense", "model.moe_aux_loss_coef"}, {"tiny-dense", "train.lr"}, {"tiny-dense", "train.min_lr"},
      {"tiny-dense", "train.weight_decay"}, {"tiny-dense", "train.beta1"}, {"tiny-dense", "train.beta2"},
      {"tiny-dense", "train.adam_eps"}, {"tiny-dense", "train.grad_clip"}, {"tiny-rl", "rl.temperature"},
      {"tiny-rl", "rl.top_p"}, {"tiny-rl", "rl.lr"}, {"tiny-rl", "rl.clip_low"}, {"tiny-rl", "rl.clip_high"},
      {"tiny-rl", "rl.kl_beta"}, {"tiny-rl", "rl.tis_cap"}, {"tiny-rl", "rl.dpo_beta"}};
  for (const FloatKey& k : keys)
    for (const std::string value : {"inf", "-inf", "nan"}) {
      const Shape s = shape_of(k.shape, {"--" + k.key + "=" + value});
      const InputError e = input_error([&] {
        if (k.shape == "tiny-rl")
          s.flywheel_spec().validate(2);
        else
          s.validate(1);
      });
      // Boost reads "nan" as nan and prints it back as "nan" or "-nan".
      expect_plain(e, k.key + " = ");
      expect_plain(e, ": must be a finite number");
    }
  // Finite values still pass, extreme ones included where they are allowed.
  EXPECT_NO_THROW(shape_of("tiny-dense", {"--train.grad_clip=1e300"}).validate(1));
}

TEST(InputError, RolloutsMustFitTheSequenceAfterTheLongestPrompt) {
  // tiny-rl: addition with 1-digit operands ("9+9=": 4 bytes), train.seq_len = 24, max_seq_len = 64:
  // prompt (BOS + 4) + max_new_tokens <= 25.
  EXPECT_NO_THROW(shape_of("tiny-rl", {"--rl.max_new_tokens=20"}).flywheel_spec().validate(2));
  expect_plain(input_error([] { shape_of("tiny-rl", {"--rl.max_new_tokens=21"}).flywheel_spec().validate(2); }),
               "rl.max_new_tokens = 21 does not fit: task addition with data.task_max_digits = 1 draws prompts of up "
               "to 5 tokens");
  expect_plain(input_error([] { shape_of("tiny-rl", {"--rl.max_new_tokens=21"}).flywheel_spec().validate(2); }),
               "allowed: rl.max_new_tokens <= 20");
  // The KV cache bound: max_seq_len below seq_len + 1.
  expect_plain(input_error([] {
                 shape_of("tiny-rl", {"--model.max_seq_len=24", "--rl.max_new_tokens=20"}).flywheel_spec().validate(2);
               }),
               "allowed: rl.max_new_tokens <= 19");
  // Longer prompts of a harder task leave no room at all.
  expect_plain(input_error([] {
                 shape_of("tiny-rl", {"--data.task_max_digits=18", "--rl.task=reverse"}).flywheel_spec().validate(2);
               }),
               "no completion fits: raise train.seq_len and model.max_seq_len to at least");
  expect_plain(input_error([] { shape_of("tiny-rl", {"--data.task_max_digits=0"}).flywheel_spec().validate(2); }),
               "data.task_max_digits = 0 is out of range");
}

}  // namespace
}  // namespace flywheel
