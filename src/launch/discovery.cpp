#include "launch/discovery.h"

#include <mpi.h>
#include <pmix.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/log.h"

namespace flywheel {

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::optional<int> parse_count(std::string_view text) {
  int value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < 0) return std::nullopt;
  return value;
}

std::optional<int> slurm_tasks_on_node(std::string_view spec, int node) {
  if (node < 0) return std::nullopt;
  // The whole list is checked, not just up to `node`: a damaged variable is not trusted at all.
  std::optional<int> answer;
  long long first = 0;  // index of the first node the current entry covers
  for (bool more = !spec.empty(); more;) {
    const size_t comma = spec.find(',');
    std::string_view entry = spec.substr(0, comma);
    more = comma != std::string_view::npos;
    spec = more ? spec.substr(comma + 1) : std::string_view();
    int repeat = 1;
    if (const size_t open = entry.find("(x"); open != std::string_view::npos) {
      if (entry.back() != ')') return std::nullopt;
      const auto r = parse_count(entry.substr(open + 2, entry.size() - open - 3));
      if (!r || *r == 0) return std::nullopt;
      repeat = *r;
      entry = entry.substr(0, open);
    }
    const auto tasks = parse_count(entry);
    if (!tasks) return std::nullopt;
    if (!answer && node < first + repeat) answer = *tasks;
    first += repeat;
  }
  return answer;
}

namespace {

std::optional<int> env_count(const EnvLookup& env, const char* name) {
  const auto value = env(name);
  return value ? parse_count(*value) : std::nullopt;
}

std::optional<Placement> from_ompi(const EnvLookup& env) {
  const auto rank = env_count(env, "OMPI_COMM_WORLD_RANK");
  const auto local_rank = env_count(env, "OMPI_COMM_WORLD_LOCAL_RANK");
  const auto local_size = env_count(env, "OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!rank || !local_rank || !local_size) return std::nullopt;
  return Placement{*rank, *local_rank, *local_size, -1, "", "env:ompi"};
}

std::optional<Placement> from_slurm(const EnvLookup& env) {
  const auto rank = env_count(env, "SLURM_PROCID");
  const auto local_rank = env_count(env, "SLURM_LOCALID");
  if (!rank || !local_rank) return std::nullopt;
  const auto node_id = env_count(env, "SLURM_NODEID");
  // The step's own layout first (srun sets it); the allocation's next; the uniform request last.
  std::optional<int> local_size;
  for (const char* name : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    if (const auto spec = env(name)) local_size = slurm_tasks_on_node(*spec, node_id.value_or(0));
    if (local_size) break;
  }
  if (!local_size) local_size = env_count(env, "SLURM_NTASKS_PER_NODE");
  if (!local_size) return std::nullopt;
  return Placement{*rank, *local_rank, *local_size, node_id.value_or(-1), env("SLURMD_NODENAME").value_or(""),
                   "env:slurm"};
}

std::optional<Placement> from_hydra(const EnvLookup& env) {
  const auto rank = env_count(env, "PMI_RANK");
  const auto local_rank = env_count(env, "MPI_LOCALRANKID");
  const auto local_size = env_count(env, "MPI_LOCALNRANKS");
  if (!rank || !local_rank || !local_size) return std::nullopt;
  return Placement{*rank, *local_rank, *local_size, -1, "", "env:hydra"};
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

}  // namespace

std::optional<Placement> placement_from_env(const EnvLookup& env) {
  if (auto p = from_ompi(env)) return p;
  if (auto p = from_slurm(env)) return p;
  return from_hydra(env);
}

std::string placement_mismatch(const Placement& p, int mpi_rank, int world_size) {
  if (p.rank != mpi_rank) return detail::concat(p.source, " says rank ", p.rank, ", MPI says ", mpi_rank);
  if (p.local_size < 1 || p.local_size > world_size)
    return detail::concat(p.source, " says ", p.local_size, " ranks on this node, MPI world has ", world_size);
  if (p.local_rank < 0 || p.local_rank >= p.local_size)
    return detail::concat(p.source, " says local rank ", p.local_rank, " of ", p.local_size);
  return "";
}

// ---- PMIx --------------------------------------------------------------------------------------

namespace {
int g_pmix_refs = 0;  // our successful PMIx_Init calls not yet finalised

// Any integer-typed PMIx value as int64 (servers differ: Open MPI sends uint16/uint32, others may not).
std::optional<long long> pmix_number(const pmix_value_t& v) {
  switch (v.type) {
    case PMIX_UINT8: return v.data.uint8;
    case PMIX_UINT16: return v.data.uint16;
    case PMIX_UINT32: return v.data.uint32;
    case PMIX_UINT64: return static_cast<long long>(v.data.uint64);
    case PMIX_INT8: return v.data.int8;
    case PMIX_INT16: return v.data.int16;
    case PMIX_INT32: return v.data.int32;
    case PMIX_INT64: return v.data.int64;
    case PMIX_INT: return v.data.integer;
    case PMIX_UINT: return v.data.uint;
    case PMIX_SIZE: return static_cast<long long>(v.data.size);
    case PMIX_PROC_RANK: return v.data.rank;
    default: return std::nullopt;
  }
}

// Looks `key` up for this proc, then at job level (wildcard rank): servers file node-level keys
// differently (Open MPI: PMIX_LOCAL_SIZE only under the wildcard). PMIX_OPTIONAL: answer from the
// local store without asking the server, so a missing key costs nothing and never blocks.
pmix_value_t* pmix_lookup(const pmix_proc_t& me, const char* key) {
  pmix_proc_t job;
  PMIX_PROC_CONSTRUCT(&job);
  PMIX_LOAD_PROCID(&job, me.nspace, PMIX_RANK_WILDCARD);
  pmix_info_t optional;
  PMIX_INFO_CONSTRUCT(&optional);
  bool yes = true;
  PMIX_INFO_LOAD(&optional, PMIX_OPTIONAL, &yes, PMIX_BOOL);
  pmix_value_t* value = nullptr;
  for (const pmix_proc_t* proc : {&me, static_cast<const pmix_proc_t*>(&job)}) {
    if (PMIx_Get(proc, key, &optional, 1, &value) == PMIX_SUCCESS && value != nullptr) break;
    value = nullptr;
  }
  PMIX_INFO_DESTRUCT(&optional);
  return value;
}

std::optional<long long> pmix_get_number(const pmix_proc_t& me, const char* key) {
  pmix_value_t* value = pmix_lookup(me, key);
  if (value == nullptr) return std::nullopt;
  const auto number = pmix_number(*value);
  PMIX_VALUE_RELEASE(value);
  return number;
}

std::string pmix_get_string(const pmix_proc_t& me, const char* key) {
  pmix_value_t* value = pmix_lookup(me, key);
  if (value == nullptr) return "";
  std::string text = value->type == PMIX_STRING && value->data.string != nullptr ? value->data.string : "";
  PMIX_VALUE_RELEASE(value);
  return text;
}
}  // namespace

std::optional<Placement> placement_from_pmix(std::string* why) {
  // Without a server PMIx_Init would set up a singleton and report UNREACHABLE; don't even try.
  if (std::getenv("PMIX_NAMESPACE") == nullptr || std::getenv("PMIX_RANK") == nullptr) {
    *why = "not launched by a PMIx server (PMIX_NAMESPACE unset)";
    return std::nullopt;
  }
  pmix_proc_t me;
  PMIX_PROC_CONSTRUCT(&me);
  const pmix_status_t rc = PMIx_Init(&me, nullptr, 0);
  if (rc != PMIX_SUCCESS) {
    *why = detail::concat("PMIx_Init failed: ", PMIx_Error_string(rc));
    return std::nullopt;
  }
  ++g_pmix_refs;
  const auto local_rank = pmix_get_number(me, PMIX_LOCAL_RANK);
  const auto local_size = pmix_get_number(me, PMIX_LOCAL_SIZE);
  if (!local_rank || !local_size) {
    *why = detail::concat("the PMIx server gave no ", local_rank ? PMIX_LOCAL_SIZE : PMIX_LOCAL_RANK);
    PMIx_Finalize(nullptr, 0);
    --g_pmix_refs;
    return std::nullopt;
  }
  Placement p;
  p.rank = static_cast<int>(me.rank);
  p.local_rank = static_cast<int>(*local_rank);
  p.local_size = static_cast<int>(*local_size);
  p.node_id = static_cast<int>(pmix_get_number(me, PMIX_NODEID).value_or(-1));
  p.node = pmix_get_string(me, PMIX_HOSTNAME);
  p.source = "pmix";
  return p;
}

void finalize_pmix() {
  for (; g_pmix_refs > 0; --g_pmix_refs) PMIx_Finalize(nullptr, 0);
}

// ---- MPI and the chain -------------------------------------------------------------------------

Placement placement_from_mpi() {
  Placement p;
  MPI_Comm_rank(MPI_COMM_WORLD, &p.rank);
  // Ranks sharing memory are the ranks on this node, whatever launched us.
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, p.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &p.local_rank);
  MPI_Comm_size(node, &p.local_size);
  MPI_Comm_free(&node);
  p.node = host_name();
  p.source = "mpi";
  return p;
}

Placement discover_placement(int mpi_rank, int world_size) {
  std::optional<Placement> chosen;
  std::string why;
  if (auto p = placement_from_pmix(&why)) {
    const std::string bad = placement_mismatch(*p, mpi_rank, world_size);
    if (bad.empty()) chosen = std::move(p);
    else log_warn("discovery: ignoring PMIx: ", bad);
  } else {
    log_debug("discovery: no PMIx: ", why);
  }
  if (!chosen) {
    if (auto p = placement_from_env(process_environment())) {
      const std::string bad = placement_mismatch(*p, mpi_rank, world_size);
      if (bad.empty()) chosen = std::move(p);
      else log_warn("discovery: ignoring launcher variables: ", bad);
    }
  }
  // The MPI fallback is a collective: every rank takes it if any rank needs it.
  int need_mpi = chosen ? 0 : 1;
  MPI_Allreduce(MPI_IN_PLACE, &need_mpi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (need_mpi) chosen = placement_from_mpi();
  if (chosen->node.empty()) chosen->node = host_name();
  return *chosen;
}

std::string describe_placement(const Placement& p, int world_size) {
  return detail::concat(p.source, " (rank ", p.rank, "/", world_size, ", local ", p.local_rank, "/", p.local_size,
                        ", node ", p.node, ")");
}

}  // namespace flywheel
