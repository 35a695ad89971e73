// Launcher discovery without a launcher: the environment-variable parsing and the consistency check
// (launch/discovery.h), and the fault-injection spec (core/fault_injection.h). The PMIx and MPI
// paths need a launcher: tests/mpi/discovery_check.cpp runs them under mpirun.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "launch/discovery.h"
#include "core/fault_injection.h"

using namespace flywheel;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST(Discovery, ParseCount) {
  EXPECT_EQ(parse_count("0"), 0);
  EXPECT_EQ(parse_count("17"), 17);
  for (const char* bad : {"", "-1", "+1", "1x", " 1", "1 ", "x", "99999999999"})
    EXPECT_EQ(parse_count(bad), std::nullopt) << "'" << bad << "'";
}

TEST(Discovery, SlurmTasksPerNode) {
  EXPECT_EQ(slurm_tasks_on_node("4", 0), 4);
  EXPECT_EQ(slurm_tasks_on_node("4", 1), std::nullopt);
  // 2,2,2,1: a repeated entry, then a single one.
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 0), 2);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 2), 2);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 3), 1);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 4), std::nullopt);
  EXPECT_EQ(slurm_tasks_on_node("1,3(x2)", 2), 3);
  EXPECT_EQ(slurm_tasks_on_node("4", -1), std::nullopt);
  for (const char* bad : {"", "a", "2(x0)", "2(x3", "2(3)", "2(x3),", ",2", "2(xa)"})
    EXPECT_EQ(slurm_tasks_on_node(bad, 0), std::nullopt) << "'" << bad << "'";
}

TEST(Discovery, OpenMpiVariables) {
  const auto p = placement_from_env(env_of(
      {{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->source, "env:ompi");
  EXPECT_EQ(p->rank, 5);
  EXPECT_EQ(p->local_rank, 1);
  EXPECT_EQ(p->local_size, 4);
  EXPECT_EQ(p->node_id, -1);
  EXPECT_EQ(p->node, "");
}

TEST(Discovery, OpenMpiWinsOverTheBatchStepsSlurmVariables) {
  // mpirun inside an sbatch script: the batch step's SLURM_PROCID=0 must not override Open MPI's rank.
  const auto p = placement_from_env(env_of({{"OMPI_COMM_WORLD_RANK", "3"},
                                            {"OMPI_COMM_WORLD_LOCAL_RANK", "3"},
                                            {"OMPI_COMM_WORLD_LOCAL_SIZE", "8"},
                                            {"SLURM_PROCID", "0"},
                                            {"SLURM_LOCALID", "0"},
                                            {"SLURM_TASKS_PER_NODE", "1"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->source, "env:ompi");
  EXPECT_EQ(p->rank, 3);
}

TEST(Discovery, SlurmVariables) {
  // Third node of "2,2,1": one task there; the step's layout wins over the allocation's.
  const auto p = placement_from_env(env_of({{"SLURM_PROCID", "4"},
                                            {"SLURM_LOCALID", "0"},
                                            {"SLURM_NODEID", "2"},
                                            {"SLURM_STEP_TASKS_PER_NODE", "2(x2),1"},
                                            {"SLURM_TASKS_PER_NODE", "4(x3)"},
                                            {"SLURMD_NODENAME", "gpu-17"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->source, "env:slurm");
  EXPECT_EQ(p->rank, 4);
  EXPECT_EQ(p->local_rank, 0);
  EXPECT_EQ(p->local_size, 1);
  EXPECT_EQ(p->node_id, 2);
  EXPECT_EQ(p->node, "gpu-17");
}

TEST(Discovery, SlurmSizeFallbacks) {
  // Only the allocation's list, no node id: node 0.
  auto p = placement_from_env(env_of({{"SLURM_PROCID", "1"}, {"SLURM_LOCALID", "1"}, {"SLURM_TASKS_PER_NODE", "3(x2)"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->local_size, 3);
  // Only the uniform request.
  p = placement_from_env(env_of({{"SLURM_PROCID", "1"}, {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "2"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->local_size, 2);
  // A malformed list falls through to the request.
  p = placement_from_env(env_of(
      {{"SLURM_PROCID", "1"}, {"SLURM_LOCALID", "1"}, {"SLURM_TASKS_PER_NODE", "junk"}, {"SLURM_NTASKS_PER_NODE", "2"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->local_size, 2);
  // No size at all: Slurm is incomplete, and nothing else is set.
  EXPECT_EQ(placement_from_env(env_of({{"SLURM_PROCID", "1"}, {"SLURM_LOCALID", "1"}})), std::nullopt);
}

TEST(Discovery, HydraVariables) {
  const auto p =
      placement_from_env(env_of({{"PMI_RANK", "6"}, {"MPI_LOCALRANKID", "2"}, {"MPI_LOCALNRANKS", "4"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->source, "env:hydra");
  EXPECT_EQ(p->rank, 6);
  EXPECT_EQ(p->local_rank, 2);
  EXPECT_EQ(p->local_size, 4);
  // PMI_RANK alone says nothing about the node: not a usable source.
  EXPECT_EQ(placement_from_env(env_of({{"PMI_RANK", "6"}})), std::nullopt);
}

TEST(Discovery, IncompleteOrJunkSetsFallThrough) {
  // Open MPI without LOCAL_SIZE, then a complete Hydra set.
  auto p = placement_from_env(env_of({{"OMPI_COMM_WORLD_RANK", "1"},
                                      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                      {"PMI_RANK", "1"},
                                      {"MPI_LOCALRANKID", "1"},
                                      {"MPI_LOCALNRANKS", "2"}}));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->source, "env:hydra");
  p = placement_from_env(env_of(
      {{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}}));
  EXPECT_EQ(p, std::nullopt);
  EXPECT_EQ(placement_from_env(env_of({})), std::nullopt);
}

TEST(Discovery, MismatchWithMpi) {
  Placement p{2, 1, 4, -1, "", "env:ompi"};
  EXPECT_EQ(placement_mismatch(p, 2, 8), "");
  EXPECT_NE(placement_mismatch(p, 3, 8).find("says rank 2, MPI says 3"), std::string::npos);
  EXPECT_NE(placement_mismatch(p, 2, 3).find("4 ranks on this node"), std::string::npos);
  p.local_rank = 4;
  EXPECT_NE(placement_mismatch(p, 2, 8).find("local rank 4 of 4"), std::string::npos);
  p.local_rank = 0;
  p.local_size = 0;
  EXPECT_NE(placement_mismatch(p, 2, 8), "");
}

TEST(Discovery, Describe) {
  EXPECT_EQ(describe_placement(Placement{0, 0, 8, 0, "vm", "pmix"}, 8), "pmix (rank 0/8, local 0/8, node vm)");
}

TEST(FaultSpec, Parse) {
  EXPECT_EQ(parse_fault_spec(""), std::nullopt);
  auto s = parse_fault_spec("rank=2,step=3");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rank, 2);
  EXPECT_EQ(s->step, 3);
  EXPECT_EQ(s->mode, FaultSpec::Mode::kThrow);
  s = parse_fault_spec("step=0,mode=kill,rank=0");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->mode, FaultSpec::Mode::kKill);
  for (const char* bad : {"rank=2", "step=3", "rank=2,step=x", "rank=-1,step=3", "rank=2,step=3,mode=segv",
                          "rank=2,step=3,when=now", "rank=2;step=3", "rank=2,,step=3"})
    EXPECT_THROW(parse_fault_spec(bad), Error) << bad;
}

TEST(FaultSpec, NoVariableNoFault) {
  // The test environment does not set FLYWHEEL_FAULT_INJECT (ctest registers no such ENVIRONMENT).
  EXPECT_NO_THROW(maybe_inject_fault(0, 0));
  EXPECT_NO_THROW(maybe_inject_fault(2, 3));
}
