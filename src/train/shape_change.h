// How a resumed run's shape differs from the shape it was trained with, key by key, and which
// differences a resume may carry. Shape texts are the resolved INI texts runs record (shape.ini,
// state.h5 `shape_text`); they are compared by parsed values, so comments, order and spelling of a
// number ("3e-3" vs "0.003") do not count as changes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace flywheel {

struct ShapeChange {
  std::string key;                    // "train.lr"
  std::optional<std::string> before;  // nullopt: the key was not set (its default applied)
  std::optional<std::string> after;
};

// Every key whose value differs between the two texts, sorted by key. Throws naming `origin` when a
// text is not INI.
std::vector<ShapeChange> shape_changes(const std::string& before, const std::string& after, const std::string& origin);

// Whether a resume may change `key` (the list is in shape_change.cpp and docs/operations.md).
bool resumable_key(const std::string& key);
// "train.steps, every [mesh] key, ...": the allowed keys, for messages.
std::string resumable_keys_text();

// "train.lr: 0.003 -> 0.001" ("(not set)" for a missing side).
std::string change_text(const ShapeChange& change);

// What changing train.steps does to the learning rate of `next_step` (0-based), the first step the
// resumed run trains: warmup + cosine is defined over train.steps, so the schedule stretches (or
// shrinks) from there. `now` is the new [train] section; its steps replace `old_steps`.
std::string schedule_change_text(const TrainConfig& now, int64_t old_steps, int64_t next_step);

}  // namespace flywheel
