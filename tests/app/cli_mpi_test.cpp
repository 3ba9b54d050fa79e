// Data-parallel training under mpirun (train/dist.h), through the `ponder` binary: R ranks train
// the model one process trains, bit for bit, with the same metrics (SFT; GRPO with each loss type,
// dynamic sampling, LoRA and a KL reference), for R = 2, 3, 4 on this machine (oversubscribed);
// a rank count the batch cannot use and commands that do not run across ranks are refused up
// front; a rank killed mid-run ends the job with a message on the other rank, and --resume from
// the last checkpoint reproduces the uninterrupted run.
//
// Skipped when ponder was built without MPI or mpirun is missing, unless PONDER_REQUIRE_MPI is set
// (CI sets it: there the skip would hide a missing dependency).
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <signal.h>
#include <sys/wait.h>
#include <thread>

#include "train/checkpoint.h"
#include "train/dist.h"
#include "support/run_cli.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

namespace fs = std::filesystem;

using Result = ponder::testing::CliResult;
using ponder::testing::slurp;

const std::string kPonder = std::string(PONDER_BINARY_DIR) + "/ponder ";
// As root (containers, CI) Open MPI wants both variables; the shared-memory transport's
// single-copy mechanism (CMA) is not allowed in every container.
const std::string kMpiEnv =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none ";

std::string mpirun(int ranks) {
  return kMpiEnv + "timeout 600 mpirun -np " + std::to_string(ranks) + " --oversubscribe " + kPonder;
}

Result shell(const std::string& cmd_line) {
  const std::string out = temp_path("mpi_out"), err = temp_path("mpi_err");
  const std::string cmd = "ulimit -c 0; " + cmd_line + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out), slurp(err)};
}

Result run_ranks(int ranks, const std::string& args) { return shell(mpirun(ranks) + args); }
Result run_alone(const std::string& args) { return shell(kPonder + args); }

bool have_mpi() {
  if (dist_built_with_mpi() && std::system("command -v mpirun >/dev/null 2>&1") == 0) return true;
  if (std::getenv("PONDER_REQUIRE_MPI") != nullptr)
    ADD_FAILURE() << "PONDER_REQUIRE_MPI is set but ponder was built without MPI or mpirun is missing";
  return false;
}

#define REQUIRE_MPI()                                                                                  \
  if (!have_mpi()) GTEST_SKIP() << "ponder built without MPI or no mpirun (scripts/install-deps.sh installs Open MPI)"

std::string fresh_dir(const std::string& name) {
  const std::string d = temp_path("mpi_" + name);
  fs::remove_all(d);
  return d;
}

// The metrics of a run without its timings (and the bytes only ranks exchange).
std::vector<nlohmann::json> metrics_without_timing(const std::string& dir) {
  static const std::set<std::string> timing = {"step_seconds", "tokens_per_s", "comm_seconds", "comm_bytes",
                                               "rollout_seconds", "train_seconds", "rollout_tokens_per_s"};
  std::vector<nlohmann::json> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    for (const std::string& k : timing) j.erase(k);
    out.push_back(j);
  }
  return out;
}

// Same model bytes, same checkpoint (parameters, AdamW state, step), same metrics.
void expect_same_run(const std::string& alone, const std::string& ranks, const std::string& what) {
  const std::string a = slurp(alone + "/model.gguf"), b = slurp(ranks + "/model.gguf");
  ASSERT_FALSE(a.empty()) << what;
  EXPECT_TRUE(a == b) << what << ": the exported models differ";
  const Checkpoint ca = read_checkpoint(alone + "/checkpoint.bin"), cb = read_checkpoint(ranks + "/checkpoint.bin");
  EXPECT_EQ(ca.step, cb.step) << what;
  EXPECT_TRUE(ca.params == cb.params) << what << ": parameters differ";
  EXPECT_TRUE(ca.adam.m == cb.adam.m && ca.adam.v == cb.adam.v) << what << ": AdamW moments differ";
  const auto ma = metrics_without_timing(alone), mb = metrics_without_timing(ranks);
  ASSERT_EQ(ma.size(), mb.size()) << what;
  for (size_t i = 0; i < ma.size(); ++i) EXPECT_EQ(ma[i], mb[i]) << what << ": metrics line " << i;
}

const std::string kSft = "train sft --task arith --preset tiny --eval-count 0 --quiet ";

TEST(CliMpi, SftOnRanksEqualsOneProcess) {
  REQUIRE_MPI();
  for (const auto& [ranks, accum] : {std::pair{2, 2}, std::pair{2, 3}, std::pair{4, 4}}) {
    const std::string args = kSft + "--steps 4 --batch 4 --accum " + std::to_string(accum) + " --out ";
    const std::string what = "-np " + std::to_string(ranks) + " --accum " + std::to_string(accum);
    const std::string alone = fresh_dir("sft_alone"), dp = fresh_dir("sft_dp");
    const Result r1 = run_alone(args + alone);
    ASSERT_EQ(r1.exit_code, 0) << r1.err;
    const Result r2 = run_ranks(ranks, args + dp);
    ASSERT_EQ(r2.exit_code, 0) << what << ": " << r2.err;
    EXPECT_NE(r2.out.find("model: " + dp + "/model.gguf"), std::string::npos) << "rank 0 reports: " << r2.out;
    EXPECT_EQ(r2.out.find("model:"), r2.out.rfind("model:")) << "only rank 0 reports: " << r2.out;
    expect_same_run(alone, dp, what);
    // The ranks did exchange gradients: rank 0 sent bytes every step.
    std::ifstream in(dp + "/metrics.jsonl");
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_GT(nlohmann::json::parse(line).at("comm_bytes").get<double>(), 0) << what;
  }
}

// A tiny policy whose rollouts have unequal rewards (the overlong reward tells lengths apart).
const std::string& grpo_base() {
  static const std::string model = [] {
    const std::string dir = fresh_dir("grpo_base");
    const Result r = run_alone(kSft + "--steps 30 --batch 16 --lr 3e-3 --out " + dir);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir + "/model.gguf";
  }();
  return model;
}

std::string grpo_args(const std::string& extra, int prompts = 4, int micro_batch = 4) {
  return "train grpo --task arith --model " + grpo_base() + " --steps 2 --prompts-per-step " + std::to_string(prompts) +
         " --num-generations 4 --micro-batch " + std::to_string(micro_batch) +
         " -n 20 --lr 1e-3 --eval-count 0 --quiet --rewards accuracy:1,format:0.5,overlong:1 " + extra + " --out ";
}

TEST(CliMpi, GrpoOnTwoRanksEqualsOneProcessForEveryLossType) {
  REQUIRE_MPI();
  for (const std::string loss : {"grpo", "bnpo", "dr_grpo", "dapo"}) {
    // mu = 2 (the second iteration reads the first one's old log-probs on the rank that made them),
    // a KL reference, batch-scaled rewards and masked truncations: every step-wide statistic.
    const std::string args = grpo_args("--loss-type " + loss +
                                       " --num-iterations 2 --beta 0.04 --scale-rewards batch --mask-truncated-completions");
    const std::string alone = fresh_dir("grpo_alone"), dp = fresh_dir("grpo_dp");
    const Result r1 = run_alone(args + alone);
    ASSERT_EQ(r1.exit_code, 0) << r1.err;
    const Result r2 = run_ranks(2, args + dp);
    ASSERT_EQ(r2.exit_code, 0) << loss << ": " << r2.err;
    expect_same_run(alone, dp, "grpo --loss-type " + loss);
    const auto m = metrics_without_timing(alone);
    ASSERT_FALSE(m.empty());
    EXPECT_NE(m[0].at("loss").get<double>(), 0.0) << loss << ": the comparison needs a step that learns";
    EXPECT_GT(m[0].at("reward_std").get<double>(), 0.0) << loss;
  }
}

TEST(CliMpi, GrpoDynamicSamplingAndLoraOnThreeAndFourRanks) {
  REQUIRE_MPI();
  // 6 groups per generation batch over 3 or 4 ranks (2, 2, 2 and 1, 2, 1, 2), micro-batches of 5
  // rollouts (an uneven last round), dynamic sampling's refill batches, LoRA adapters.
  const std::string args = grpo_args("--dynamic-sampling --lora-rank 4 --beta 0.02", 6, 5);
  const std::string alone = fresh_dir("ds_alone");
  const Result r1 = run_alone(args + alone);
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  for (int ranks : {3, 4}) {
    const std::string dp = fresh_dir("ds_dp");
    const Result r = run_ranks(ranks, args + dp);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_run(alone, dp, "-np " + std::to_string(ranks) + " dynamic sampling + LoRA");
    EXPECT_TRUE(slurp(alone + "/lora.gguf") == slurp(dp + "/lora.gguf")) << "the adapters differ";
  }
}

TEST(CliMpi, RankCountsTheBatchCannotUseAreRefusedUpFront) {
  REQUIRE_MPI();
  Result r = run_ranks(2, kSft + "--steps 2 --batch 4 --accum 1 --out " + fresh_dir("refuse_sft"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--accum 1 gives 1 micro-batch(es) per step, fewer than the 2 MPI ranks"), std::string::npos) << r.err;
  // Every rank refuses; whichever gets there first ends the job (MPI_Abort), so the message names
  // rank 0 or rank 1 (a clean-clone CI run saw rank 1's, rank 0 being ended before it printed).
  EXPECT_TRUE(r.err.find("(rank 0 of 2)") != std::string::npos || r.err.find("(rank 1 of 2)") != std::string::npos)
      << "names the rank: " << r.err;
  EXPECT_FALSE(fs::exists(temp_path("mpi_refuse_sft") + "/checkpoint.bin"));

  r = run_ranks(3, grpo_args("", 2) + fresh_dir("refuse_grpo"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--prompts-per-step 2 is fewer than the 3 MPI ranks"), std::string::npos) << r.err;

  r = run_ranks(2, "info");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("only `ponder train sft|grpo` runs across MPI ranks"), std::string::npos) << r.err;
}

// The pid of rank `rank` of the job writing to `out_dir`, 0 when there is none (yet).
pid_t rank_pid(const std::string& out_dir, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = slurp(entry.path() / "cmdline");
    if (cmdline.find(out_dir) == std::string::npos || cmdline.find("ponder") == std::string::npos) continue;
    const std::string env = slurp(entry.path() / "environ");
    std::string::size_type at = 0;
    while ((at = env.find(want, at)) != std::string::npos) {
      const bool whole = (at == 0 || env[at - 1] == '\0') && (at + want.size() == env.size() || env[at + want.size()] == '\0');
      if (whole) return pid_t(std::stol(name));
      at += want.size();
    }
  }
  return 0;
}

TEST(CliMpi, KilledRankEndsTheJobAndResumeReproducesTheRun) {
  REQUIRE_MPI();
  const std::string args = kSft + "--steps 300 --batch 8 --accum 2 --save-every 2 --out ";
  const std::string whole = fresh_dir("kill_whole"), dir = fresh_dir("kill");
  ASSERT_EQ(run_alone(args + whole).exit_code, 0);

  // The job in the background; its exit code lands in a file.
  const std::string err = temp_path("kill_err"), rc = temp_path("kill_rc");
  fs::remove(rc);
  const std::string cmd = "(" + mpirun(2) + args + dir + " >/dev/null 2>" + err + "; echo $? >" + rc + ".tmp; mv " + rc +
                          ".tmp " + rc + ") &";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  using Clock = std::chrono::steady_clock;
  const auto give_up = Clock::now() + std::chrono::seconds(120);  // a hang guard, not a timing
  // Wait for a checkpoint past the first one, then kill rank 1 (SIGKILL: no chance to clean up).
  pid_t victim = 0;
  while (Clock::now() < give_up && !fs::exists(rc)) {
    if (fs::exists(dir + "/checkpoint.bin") && read_checkpoint(dir + "/checkpoint.bin").step >= 4 &&
        (victim = rank_pid(dir, 1)) != 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_NE(victim, 0) << "the job ended before a rank could be killed: " << slurp(err);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  const auto killed = Clock::now();
  while (Clock::now() < give_up && !fs::exists(rc)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(rc)) << "the job did not end after rank 1 was killed";
  const double seconds = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("the job ended %.2f s after rank 1 was killed\n", seconds);
  EXPECT_NE(std::stoi(slurp(rc)), 0);
  const std::string message = slurp(err);
  EXPECT_NE(message.find("ponder: rank 0 of 2: ended by the MPI runtime (another rank of the job failed"),
            std::string::npos) << message;
  const int64_t at = read_checkpoint(dir + "/checkpoint.bin").step;
  ASSERT_LT(at, 300) << "killed mid-run";

  // Resume in one process (a checkpoint does not depend on the ranks that wrote it): the
  // uninterrupted run's model and metrics.
  const Result r = run_alone(args + dir + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_run(whole, dir, "resumed from step " + std::to_string(at));
}

}  // namespace
}  // namespace ponder
