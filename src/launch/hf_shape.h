// A shape with `model.from_hf = DIR` (issue #10): DIR/config.json sets every architecture key of
// [model] (model/hf_config.h reads it). A key the shape file or the command line sets as well must
// agree with the config: a contradiction is an InputError naming both values. Two keys are the
// shape's to choose, because they change training, not the model: model.max_seq_len (at most the
// config's max_position_embeddings: a shorter RoPE table and KV cache) and model.moe_aux_loss_coef
// (the load-balancing loss weight; the config's router_aux_loss_coef is its default). Keys the config
// does not describe (model.init_std, model.forward_kernels) stay the shape's.
//
// The resolved values are written into the recorded shape text, so a run directory's shape.ini and a
// checkpoint's shape_text describe the model without DIR (offline tools read them as recorded).
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "data/data_source.h"
#include "model/config.h"

namespace flywheel {

// Reads DIR/config.json into `model`. `explicit_keys`: the "model.*" keys the shape set; origin(key)
// says where ("shape file 'x.ini' line 3: ", "command-line override --model.d_model=64: "). Returns
// "--model.key=value" overrides that write the config's values into the shape text.
std::vector<std::string> resolve_hf_model(const std::string& dir, ModelConfig& model,
                                          const std::set<std::string>& explicit_keys,
                                          const std::function<std::string(const std::string&)>& origin);

// data.tokenizer = auto: `model_dir` (model.from_hf, or a run's hf/ copy) when it holds a tokenizer.json,
// else the byte tokenizer.
void resolve_tokenizer(DataConfig& data, const std::string& model_dir);

}  // namespace flywheel
