#include "rl/weight_gather.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace flywheel {
namespace {

constexpr int kTagTable = 2001;
constexpr int kTagRows = 2002;

struct SliceRecord {
  std::string name;
  int64_t row_begin = 0, row_end = 0, cols = 0;
};

void place(ParameterSet& full, const SliceRecord& s, const float* rows) {
  const int id = full.find(s.name);
  FW_CHECK(id >= 0, "gather_full_weights: a trainer rank holds '", s.name, "', which the model does not have");
  const ParamInfo& info = full.info(id);
  FW_CHECK(s.row_end * s.cols <= info.numel, "gather_full_weights: rows [", s.row_begin, ", ", s.row_end, ") x ",
           s.cols, " do not fit '", s.name, "' (", info.numel, " elements)");
  std::copy(rows, rows + (s.row_end - s.row_begin) * s.cols, full.value(id) + s.row_begin * s.cols);
}

}  // namespace

void gather_full_weights(Trainer& trainer, ParameterSet* full, bool trainable_only) {
  Comm& comm = trainer.mesh().trainers();
  Fsdp& shards = trainer.shards();
  const ParameterSet& params = trainer.model().params();
  std::vector<SliceRecord> mine;
  std::vector<const ShardSlice*> sent;
  for (const ShardSlice& s : shards.slices()) {
    if (trainable_only && !s.trainable()) continue;
    mine.push_back({params.info(s.param).name, s.row_begin, s.row_end, s.cols});
    sent.push_back(&s);
  }

  if (comm.rank() != 0) {
    nlohmann::json table = nlohmann::json::array();
    std::vector<float> rows;
    for (size_t i = 0; i < mine.size(); ++i) {
      table.push_back({mine[i].name, mine[i].row_begin, mine[i].row_end, mine[i].cols});
      const float* v = shards.values().data() + sent[i]->local_offset;
      rows.insert(rows.end(), v, v + sent[i]->numel());
    }
    // The table is host metadata (control plane); the rows are weights (data plane, fp32).
    const std::vector<uint8_t> bytes = nlohmann::json::to_cbor(table);
    comm.control().send(bytes.data(), static_cast<int64_t>(bytes.size()), 0, kTagTable);
    comm.send(rows.data(), static_cast<int64_t>(rows.size()), 0, kTagRows);
    return;
  }
  FW_CHECK(full != nullptr, "gather_full_weights: trainer rank 0 needs a destination");
  for (size_t i = 0; i < mine.size(); ++i) place(*full, mine[i], shards.values().data() + sent[i]->local_offset);
  for (int r = 1; r < comm.size(); ++r) {
    const nlohmann::json table = nlohmann::json::from_cbor(comm.control().recv(r, kTagTable));
    std::vector<SliceRecord> slices;
    int64_t total = 0;
    for (const auto& entry : table) {
      slices.push_back({entry[0].get<std::string>(), entry[1].get<int64_t>(), entry[2].get<int64_t>(),
                        entry[3].get<int64_t>()});
      total += (slices.back().row_end - slices.back().row_begin) * slices.back().cols;
    }
    std::vector<float> rows(static_cast<size_t>(total));
    comm.recv(rows.data(), total, r, kTagRows);
    int64_t offset = 0;
    for (const SliceRecord& s : slices) {
      place(*full, s, rows.data() + offset);
      offset += (s.row_end - s.row_begin) * s.cols;
    }
  }
}

}  // namespace flywheel
