#include "train/loss_batch.h"

#include "core/error.h"

namespace flywheel {
namespace {

template <typename Vector>
void check_size(const Vector& v, int64_t expected, const char* field, const char* unit) {
  FW_CHECK(v.empty() || static_cast<int64_t>(v.size()) == expected, "LossBatch.", field, " has ", v.size(),
           " entries; expected 0 (absent) or ", expected, " (one per ", unit, ")");
}

}  // namespace

void LossBatch::check_shapes(int64_t logp_size) const {
  FW_CHECK(rows >= 0 && seq >= 0, "LossBatch has rows=", rows, ", seq=", seq, "; both must be >= 0");
  const int64_t n = tokens_count();
  FW_CHECK(static_cast<int64_t>(mask.size()) == n, "LossBatch.mask has ", mask.size(),
           " entries; expected rows*seq = ", n);
  FW_CHECK(logp_size == n, "logp has ", logp_size, " entries; expected rows*seq = ", n);
  check_size(tokens, n, "tokens", "token");
  check_size(targets, n, "targets", "token");
  check_size(advantage, n, "advantage", "token");
  check_size(old_logprob, n, "old_logprob", "token");
  check_size(infer_logprob, n, "infer_logprob", "token");
  check_size(ref_logprob, n, "ref_logprob", "token");
  check_size(pair_id, rows, "pair_id", "row");
  check_size(chosen, rows, "chosen", "row");
  for (int64_t t = 0; t < n; ++t) {
    FW_CHECK(mask[t] == 0.0f || mask[t] == 1.0f, "LossBatch.mask[", t, "] = ", mask[t], "; allowed: 0 or 1");
  }
}

namespace {
template <typename T>
void copy_rows(const std::vector<T>& from, std::vector<T>& to, int64_t first_row, int64_t rows, int64_t width) {
  if (from.empty()) return;
  to.insert(to.end(), from.begin() + first_row * width, from.begin() + (first_row + rows) * width);
}
}  // namespace

LossBatch select_rows(const LossBatch& g, int64_t micro_batch, int64_t grad_accum, int64_t fsdp, int64_t fsdp_rank) {
  FW_CHECK(g.rows == micro_batch * grad_accum, "select_rows: the batch has ", g.rows,
           " rows; train.micro_batch x train.grad_accum = ", micro_batch * grad_accum);
  const int64_t per_rank = micro_batch / fsdp;
  LossBatch b;
  b.rows = per_rank * grad_accum;
  b.seq = g.seq;
  for (int64_t m = 0; m < grad_accum; ++m) {
    const int64_t first = m * micro_batch + fsdp_rank * per_rank;
    copy_rows(g.tokens, b.tokens, first, per_rank, g.seq);
    copy_rows(g.targets, b.targets, first, per_rank, g.seq);
    copy_rows(g.mask, b.mask, first, per_rank, g.seq);
    copy_rows(g.advantage, b.advantage, first, per_rank, g.seq);
    copy_rows(g.old_logprob, b.old_logprob, first, per_rank, g.seq);
    copy_rows(g.infer_logprob, b.infer_logprob, first, per_rank, g.seq);
    copy_rows(g.ref_logprob, b.ref_logprob, first, per_rank, g.seq);
    copy_rows(g.pair_id, b.pair_id, first, per_rank, 1);
    copy_rows(g.chosen, b.chosen, first, per_rank, 1);
  }
  return b;
}

LossBatch reorder_tokens(const LossBatch& rows, const std::vector<int64_t>& positions, int64_t local_seq) {
  LossBatch b;
  b.rows = rows.rows;
  b.seq = local_seq;
  auto gather = [&](const auto& from, auto& to) {
    if (from.empty()) return;
    to.resize(positions.size());
    for (size_t i = 0; i < positions.size(); ++i) to[i] = from[positions[i]];
  };
  gather(rows.tokens, b.tokens);
  gather(rows.targets, b.targets);
  gather(rows.mask, b.mask);
  gather(rows.advantage, b.advantage);
  gather(rows.old_logprob, b.old_logprob);
  gather(rows.infer_logprob, b.infer_logprob);
  gather(rows.ref_logprob, b.ref_logprob);
  b.pair_id = rows.pair_id;
  b.chosen = rows.chosen;
  return b;
}

}  // namespace flywheel
