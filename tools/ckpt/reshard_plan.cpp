#include "reshard_plan.h"

#include <map>
#include <memory>
#include <set>

#include "common.h"
#include "model/transformer.h"

namespace flywheel::ckpt_tool {

MeshConfig parse_mesh_spec(const std::string& spec) {
  MeshConfig mesh;
  std::set<std::string> seen;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string item = spec.substr(start, comma - start);
    start = comma + 1;
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      usage_error("--mesh '", spec, "': item '", item, "' is not key=value (e.g. --mesh pp=2,fsdp=2,cp=1,ep=1)");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    int64_t* field = key == "pp" ? &mesh.pp : key == "fsdp" ? &mesh.fsdp : key == "cp" ? &mesh.cp
                   : key == "ep" ? &mesh.ep : key == "serve" ? &mesh.serve : nullptr;
    if (!field) usage_error("--mesh '", spec, "': unknown key '", key, "' (allowed: pp, fsdp, cp, ep, serve)");
    if (!seen.insert(key).second) usage_error("--mesh '", spec, "': ", key, " is given twice");
    if (value.size() > 9 || value.find_first_not_of("0123456789") != std::string::npos)
      usage_error("--mesh '", spec, "': ", key, "=", value, " is not a non-negative integer");
    *field = std::stoll(value);
  }
  return mesh;
}

std::string mesh_spec_text(const MeshConfig& m) {
  return detail::concat("pp=", m.pp, " fsdp=", m.fsdp, " cp=", m.cp, " ep=", m.ep, " serve=", m.serve);
}

void check_mesh_for_model(const ModelConfig& model, const MeshConfig& mesh) {
  try {
    mesh.validate();
  } catch (const std::exception& e) {
    // The library's "src/parallel/mesh_config.cpp:16: " prefix means nothing to a tool user.
    std::string message = e.what();
    if (const size_t at = message.find(".cpp:"); message.rfind("src/", 0) == 0 && at != std::string::npos)
      if (const size_t colon = message.find(": ", at); colon != std::string::npos) message.erase(0, colon + 2);
    fail("target mesh ", mesh_spec_text(mesh), ": ", message);
  }
  if (model.n_layers % mesh.pp != 0)
    fail("target mesh ", mesh_spec_text(mesh), ": model.n_layers = ", model.n_layers, " is not divisible by pp = ",
         mesh.pp, " (every pipeline stage holds the same number of layers; pp must divide ", model.n_layers, ")");
  if (model.is_moe() && model.moe_experts % mesh.ep != 0)
    fail("target mesh ", mesh_spec_text(mesh), ": model.moe_experts = ", model.moe_experts,
         " is not divisible by ep = ", mesh.ep, " (each expert-parallel rank owns the same number of experts)");
  if (!model.is_moe() && mesh.ep != 1)
    fail("target mesh ", mesh_spec_text(mesh), ": ep = ", mesh.ep, " but the model is dense (no experts); use ep=1");
  if (model.tie_embeddings && mesh.pp > 1)
    fail("target mesh ", mesh_spec_text(mesh), ": the model ties its embeddings, which would live on the first and ",
         "the last pipeline stage; the trainer refuses pp > 1 for tied models (use pp=1)");
}

std::vector<RankPlan> plan_target_mesh(const ModelConfig& model, const MeshConfig& mesh) {
  check_mesh_for_model(model, mesh);
  // One registry per pipeline stage (a Transformer builds its RoPE table: not free for long contexts).
  std::map<int, std::unique_ptr<Transformer>> stages;
  std::set<std::tuple<std::string, int64_t, int64_t>> claimed;
  std::vector<RankPlan> plans;
  for (int r = 0; r < static_cast<int>(mesh.trainer_ranks()); ++r) {
    RankPlan plan;
    plan.rank = r;
    plan.coords = mesh_coords(mesh, r);
    plan.stage = stage_range(model, mesh, plan.coords.pp);
    auto& stage_model = stages[plan.coords.pp];
    if (!stage_model) stage_model = std::make_unique<Transformer>(model, /*allocate_full=*/false, plan.stage);
    const ParameterSet& params = stage_model->params();
    for (const UnitPlacement& unit : place_units(*stage_model, mesh, plan.coords))
      for (int id : unit.tensors) {
        const ParamInfo& info = params.info(id);
        if (model.lora.enabled() && !info.adapter) continue;  // a LoRA checkpoint names its base, holds no copy
        const int64_t rows = info.shape[0];
        RowRange range{info.name, info.shape, row_split(rows, unit.group_rank, unit.group_size),
                       row_split(rows, unit.group_rank + 1, unit.group_size)};
        if (!claimed.insert({range.name, range.row_begin, range.row_end}).second) continue;
        plan.tensors.push_back(std::move(range));
      }
    plans.push_back(std::move(plan));
  }
  return plans;
}

}  // namespace flywheel::ckpt_tool
