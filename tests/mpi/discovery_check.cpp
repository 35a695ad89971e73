// Discovery under a real launcher: mpirun -n 3 discovery_check
//
// Every rank runs each source on its own (PMIx, launcher variables, MPI_Comm_split_type) and the chain
// (discover_placement, what flywheel uses). Checks, each agreed over all ranks and printed by rank 0:
//   1. every source that answers gives this rank's MPI rank, local size 3 (all ranks on one node here)
//      and a local rank that is distinct across the ranks;
//   2. all ranks name the same node;
//   3. when a PMIx server launched us (PMIX_NAMESPACE set, as under Open MPI's mpirun), the chain
//      picked PMIx: the launcher variables and MPI are fallbacks, not the first choice.
// The chosen source is printed, e.g. "discovery: pmix (rank 0/3, local 0/3, node vm)".
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "launch/discovery.h"

using namespace flywheel;

namespace {
constexpr int kExpectedRanks = 3;
int g_rank = 0, g_failures = 0, g_checks = 0;

// Agreed over the world: fails if it fails on any rank, which then says why on its own line.
void check(bool ok, const std::string& what, const std::string& detail_if_bad = "") {
  int bad = ok ? 0 : 1;
  if (!ok) std::fprintf(stderr, "rank %d: %s: %s\n", g_rank, what.c_str(), detail_if_bad.c_str());
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  ++g_checks;
  if (bad) ++g_failures;
  if (g_rank == 0) std::printf("%s %s\n", bad ? "FAIL" : "ok  ", what.c_str());
}

// The local ranks of all ranks are a permutation of 0..n-1.
bool distinct_local_ranks(int local_rank, int world) {
  std::vector<int> all(world);
  MPI_Allgather(&local_rank, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::vector<int> seen(world, 0);
  for (int r : all)
    if (r < 0 || r >= world || seen[r]++) return false;
  return true;
}

bool same_node_everywhere(const std::string& node) {
  char mine[256] = {};
  std::strncpy(mine, node.c_str(), sizeof(mine) - 1);
  char first[256];
  std::memcpy(first, mine, sizeof(mine));
  MPI_Bcast(first, sizeof(first), MPI_CHAR, 0, MPI_COMM_WORLD);
  int differs = std::strcmp(first, mine) != 0;
  MPI_Allreduce(MPI_IN_PLACE, &differs, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return !differs;
}

void check_source(const std::string& label, const std::optional<Placement>& p, int world) {
  // A source that does not answer on any rank is skipped by all (the checks are collective).
  int present = p ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &present, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!present) {
    if (g_rank == 0) std::printf("skip %s: not available under this launcher\n", label.c_str());
    return;
  }
  const std::string mismatch = placement_mismatch(*p, g_rank, world);
  check(mismatch.empty(), label + ": rank equals the MPI rank, local rank and size in range", mismatch);
  check(p->local_size == kExpectedRanks, label + ": local size " + std::to_string(kExpectedRanks),
        "local size " + std::to_string(p->local_size));
  check(distinct_local_ranks(p->local_rank, world), label + ": local ranks are 0.." + std::to_string(world - 1));
}
}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world != kExpectedRanks) {
    if (g_rank == 0) std::fprintf(stderr, "discovery_check: run with mpirun -n %d (got %d)\n", kExpectedRanks, world);
    MPI_Finalize();
    return 2;
  }

  const Placement chosen = discover_placement(g_rank, world);
  std::printf("rank %d discovery: %s\n", g_rank, describe_placement(chosen, world).c_str());
  std::fflush(stdout);
  MPI_Barrier(MPI_COMM_WORLD);

  std::string why;
  const std::optional<Placement> pmix = placement_from_pmix(&why);
  if (!pmix && g_rank == 0) std::printf("PMIx: %s\n", why.c_str());
  check_source("chosen (" + chosen.source + ")", chosen, world);
  check_source("pmix", pmix, world);
  const std::optional<Placement> env = placement_from_env(process_environment());
  check_source("launcher variables (" + (env ? env->source : std::string("none")) + ")", env, world);
  check_source("mpi split", placement_from_mpi(), world);
  check(same_node_everywhere(chosen.node), "all ranks name the same node (" + chosen.node + ")");
  if (std::getenv("PMIX_NAMESPACE") != nullptr)
    check(chosen.source == "pmix", "launched by a PMIx server: the chain chose pmix", "chose " + chosen.source);

  if (g_rank == 0) std::printf("%d passed, %d failed\n", g_checks - g_failures, g_failures);
  finalize_pmix();
  MPI_Finalize();
  return g_failures ? 1 : 0;
}
