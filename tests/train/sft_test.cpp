// SFT: masking, exact resume, checkpoints that survive a kill, exported models that run the same
// in the inference engine, and clear errors for bad input.
#include <csignal>
#include <filesystem>
#include <sys/wait.h>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "kernels/activation.h"
#include "model/forward.h"
#include "model/lora_apply.h"
#include "train/char_vocab.h"
#include "train/checkpoint.h"
#include "train/model_io.h"
#include "train/sft.h"
#include "support/engine_logits.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const fs::path p = fs::path(temp_path("sft_" + name));
  fs::remove_all(p);
  return p.string();
}

SftOptions tiny_run(const std::string& out) {
  SftOptions o;
  o.task.name = "arith";
  o.preset = "tiny";
  o.steps = 12;
  o.batch_size = 4;
  o.save_every = 4;
  o.out_dir = out;
  o.quiet = true;
  o.seed = 5;
  return o;
}

std::vector<double> losses_in(const std::string& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"]);
  }
  return out;
}

TEST(SftData, TargetsAreTheCompletionAndEos) {
  const Tokenizer tok = char_tokenizer();
  const SftSequence s = tokenize_sft(tok, "Q: 1+2= A: <think>", " 1+2=3 </think> <answer> 3 </answer>", 256);
  // BOS + 11 prompt characters + <think>, then 12 characters, </think>, " ", <answer>, " 3 ", </answer>, EOS.
  const auto prompt = tok.encode("Q: 1+2= A: <think>", true, false);
  ASSERT_EQ(prompt.size(), 13u);
  EXPECT_EQ(s.tokens.size(), s.targets.size());
  for (size_t t = 0; t + 1 < prompt.size(); ++t) EXPECT_EQ(s.targets[t], -1) << "prompt position " << t;
  EXPECT_EQ(s.targets[prompt.size() - 1], tok.encode(" ", false, false)[0]) << "the first completion token";
  EXPECT_EQ(s.targets.back(), tok.eos()) << "the last target is EOS";
  for (size_t t = prompt.size() - 1; t + 1 < s.tokens.size(); ++t) EXPECT_EQ(s.targets[t], s.tokens[t + 1]);
  const SftSequence cut = tokenize_sft(tok, "Q: 1+2= A: <think>", " 1+2=3 </think> <answer> 3 </answer>", 16);
  EXPECT_EQ(cut.tokens.size(), 16u);
  const TrainBatch b = make_batch({s, cut}, tok.eos());
  EXPECT_EQ(b.T, int(s.tokens.size()));
  EXPECT_EQ(b.targets[size_t(b.T) + 20], -1) << "padding has no target";
}

// The 12 step losses of the runs in out dirs a and b are the same, and go down.
void expect_same_losses(const std::string& a, const std::string& b) {
  const auto la = losses_in(a + "/metrics.jsonl"), lb = losses_in(b + "/metrics.jsonl");
  ASSERT_EQ(la.size(), 12u);
  ASSERT_EQ(lb.size(), 12u);
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i], lb[i]) << "step " << i + 1;
  EXPECT_LT(la.back(), la.front()) << "the loss goes down";
}

TEST(SftResume, ContinuesExactlyLikeAnUninterruptedRun) {
  const std::string a = fresh_dir("whole"), b = fresh_dir("resumed");
  SftOptions whole = tiny_run(a);
  run_sft(whole);
  SftOptions part = tiny_run(b);
  part.stop_after = 6;  // "killed" after step 6; the last checkpoint is at step 4
  run_sft(part);
  EXPECT_EQ(read_checkpoint(b + "/checkpoint.bin").step, 4);
  SftOptions rest = tiny_run(b);
  rest.resume = true;
  run_sft(rest);
  expect_same_losses(a, b);
}

// LoRA on a GGUF model: a resumed run is the uninterrupted one, the checkpoint holds only the
// adapters (and their AdamW moments), and the exported adapter applied to the base model by the
// engine is the exported merged model.
TEST(SftResume, LoraContinuesExactlyAndExportsTheAdapter) {
  const std::string base_path = temp_path("sft_lora_base.gguf");
  TrainConfig c = find_train_preset("tiny").config;
  c.vocab = char_tokenizer().n_vocab();
  TrainModel base(c);
  init_params(base, 3);
  export_gguf(base, char_vocab_metadata(), base_path);
  auto lora_run = [&](const std::string& out) {
    SftOptions o = tiny_run(out);
    o.preset.clear();
    o.init_model = base_path;
    o.lora = {.rank = 4, .alpha = 8.0f, .targets = parse_lora_targets("q,v,gate,down")};
    o.adamw.lr = 1e-2f;
    return o;
  };
  const std::string a = fresh_dir("lora_whole"), b = fresh_dir("lora_resumed");
  const SftResult r = run_sft(lora_run(a));
  SftOptions part = lora_run(b);
  part.stop_after = 6;
  run_sft(part);
  SftOptions rest = lora_run(b);
  rest.resume = true;
  run_sft(rest);
  expect_same_losses(a, b);
  const Checkpoint ck = read_checkpoint(a + "/checkpoint.bin");
  EXPECT_EQ(ck.lora.rank, 4);
  EXPECT_EQ(ck.params.size(), LoraAdapters(c, lora_run(a).lora).layout.total);
  EXPECT_EQ(ck.adam.m.size(), ck.params.size());
  // Another rank is refused on resume.
  SftOptions other = lora_run(b);
  other.lora.rank = 2;
  other.resume = true;
  EXPECT_THROW(run_sft(other), FormatError);
  // The adapter applied by the engine to the base is the merged model the run exported.
  ASSERT_EQ(r.lora_path, a + "/lora.gguf");
  const std::vector<int32_t> tokens = char_tokenizer().encode("Q: 4+5= A: <think>", true, false);
  auto last_logits = [&](const Model& m) { return ::ponder::testing::last_logits(m, tokens); };
  const auto adapted = load_model(base_path);
  apply_lora(*adapted, r.lora_path);
  const std::vector<float> applied = last_logits(*adapted), merged = last_logits(*load_model(r.model_path));
  double largest = 0, diff = 0;  // x W^T + s (x A^T) B^T against x (W + s B A)^T
  for (size_t i = 0; i < merged.size(); ++i) {
    largest = std::max(largest, double(std::fabs(merged[i])));
    diff = std::max(diff, double(std::fabs(applied[i] - merged[i])));
  }
  EXPECT_LT(diff, 1e-5 * largest);
  EXPECT_NE(last_logits(*load_model(base_path)), last_logits(*adapted));
}

// LoRA on a Q8_0 file: the base stays in Q8_0 (frozen, dequantized where a step reads it), and
// the run is, bit for bit, the run on the same weights written as F32: adapters, AdamW moments,
// losses and the exported merged model.
TEST(SftResume, LoraOnAQuantizedBaseTrainsAsItsF32Copy) {
  TrainConfig c = find_train_preset("tiny").config;
  c.vocab = char_tokenizer().n_vocab();
  TrainModel base(c);
  init_params(base, 3);
  const std::string q8 = temp_path("sft_lora_q8.gguf"), f32 = temp_path("sft_lora_q8_as_f32.gguf");
  export_gguf(base, char_vocab_metadata(), q8, GgmlType::Q8_0);
  export_gguf(import_gguf(read_gguf(q8)), char_vocab_metadata(), f32);
  auto lora_run = [&](const std::string& model, const std::string& out) {
    SftOptions o = tiny_run(out);
    o.preset.clear();
    o.init_model = model;
    o.lora = {.rank = 4, .alpha = 8.0f};
    o.adamw.lr = 1e-2f;
    return o;
  };
  const std::string a = fresh_dir("lora_q8"), b = fresh_dir("lora_q8_as_f32");
  run_sft(lora_run(q8, a));
  run_sft(lora_run(f32, b));
  expect_same_losses(a, b);
  const Checkpoint ca = read_checkpoint(a + "/checkpoint.bin"), cb = read_checkpoint(b + "/checkpoint.bin");
  EXPECT_EQ(ca.params, cb.params);
  EXPECT_EQ(ca.adam.m, cb.adam.m);
  EXPECT_EQ(import_gguf(read_gguf(a + "/model.gguf")).params, import_gguf(read_gguf(b + "/model.gguf")).params);
  EXPECT_NE(import_gguf(read_gguf(a + "/model.gguf")).params, import_gguf(read_gguf(q8)).params) << "the adapters were merged";
}

TEST(SftResume, RefusesAnotherModelsCheckpoint) {
  const std::string dir = fresh_dir("other");
  SftOptions o = tiny_run(dir);
  o.steps = 4;
  run_sft(o);
  SftOptions other = o;
  other.preset = "small";
  other.resume = true;
  try {
    run_sft(other);
    FAIL() << "resumed another model's checkpoint";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
  SftOptions changed = o;
  changed.adamw.lr = 1e-2f;
  changed.batch_size = 2;
  changed.resume = true;
  try {
    run_sft(changed);
    FAIL() << "resumed with other options";
  } catch (const FormatError& e) {
    const std::string m = e.what();  // each differing option with both values, not the whole JSON
    EXPECT_NE(m.find("lr: 0.002 in the checkpoint, 0.01 now"), std::string::npos) << m;
    EXPECT_NE(m.find("batch: 4 in the checkpoint, 2 now"), std::string::npos) << m;
    EXPECT_EQ(m.find("warmup"), std::string::npos) << m;
  }
  // A corrupted checkpoint is a clear error, never garbage weights.
  {
    std::fstream f(dir + "/checkpoint.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  EXPECT_THROW(read_checkpoint(dir + "/checkpoint.bin"), FormatError);
}

TEST(SftInput, BadInputIsAClearError) {
  const std::string dir = fresh_dir("bad");
  fs::create_directories(dir);
  const std::string data = dir + "/data.jsonl";
  std::ofstream(data) << "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"c\"}\n";
  SftOptions o = tiny_run(dir);
  o.task.name.clear();
  o.data_path = data;
  try {
    run_sft(o);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("data.jsonl:2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("completion"), std::string::npos) << e.what();
  }
  SftOptions p = tiny_run(dir);
  p.preset = "huge";
  try {
    run_sft(p);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("5m"), std::string::npos) << "lists the presets: " << e.what();
  }
  SftOptions both = tiny_run(dir);
  both.data_path = data;
  EXPECT_THROW(run_sft(both), InvalidArgument);
}

// The exported model in the inference engine: the training forward's log-probs equal the
// engine's, and generation is the same before and after a GGUF round trip.
TEST(SftExport, InferenceMatchesTrainingAndRoundTrips) {
  const std::string dir = fresh_dir("export");
  SftOptions o = tiny_run(dir);
  o.steps = 8;
  const SftResult r = run_sft(o);
  const GgufFile f = read_gguf(r.model_path);
  TrainModel tm = import_gguf(f);
  const auto model = load_model(r.model_path);
  // Training forward vs inference forward on one sequence.
  const SftSequence s = tokenize_sft(model->tokenizer, "Q: 12+7-3= A: <think>", " 12+7=19 19-3=16 </think> <answer> 16 </answer>", 256);
  TrainBatch b = make_batch({s}, model->tokenizer.eos());
  for (size_t i = 0; i < b.targets.size(); ++i) b.targets[i] = b.tokens.size() > i + 1 ? b.tokens[i + 1] : s.targets[i];
  Activations acts;
  std::vector<float> logp;
  forward_train(tm, b, acts, logp);
  KvPool pool(model->config.n_layer, model->config.kv_dim(), 16, 8);
  KvSeq seq;
  ForwardState st;
  std::vector<float> logits;
  BatchItem item{.seq = &seq, .tokens = b.tokens, .logits = LogitsFor::All};
  forward(*model, pool, {&item, 1}, st, logits);
  const int V = model->config.n_vocab;
  double max_diff = 0;
  for (size_t t = 0; t < b.tokens.size(); ++t) {
    const float* row = logits.data() + t * size_t(V);
    const double lp = double(row[b.targets[t]]) - log_sum_exp(row, V);
    max_diff = std::max(max_diff, std::fabs(lp - logp[t]));
  }
  std::printf("training vs inference forward: max |log-prob difference| %.2e over %zu positions\n", max_diff, b.tokens.size());
  EXPECT_LT(max_diff, 1e-4);
  // Round trip: import the GGUF, export it again, generate with both.
  const std::string again = dir + "/again.gguf";
  export_gguf(tm, tokenizer_metadata(f), again);
  const auto model2 = load_model(again);
  const auto prompt = model->tokenizer.encode("Q: 5+6-2= A: <think>", true, false);
  ModelRunner r1(*model, 256), r2(*model2, 256);
  const auto g1 = generate(r1, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 40}});
  const auto g2 = generate(r2, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 40}});
  EXPECT_EQ(g1.paths[0].tokens, g2.paths[0].tokens);
  EXPECT_EQ(g1.paths[0].logprobs, g2.paths[0].logprobs);
}

TEST(SftResume, WithoutACheckpointIsAnError) {
  SftOptions o = tiny_run(fresh_dir("no_checkpoint"));
  o.resume = true;
  try {
    run_sft(o);
    FAIL() << "--resume without a checkpoint started afresh";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--resume: no checkpoint at " + o.out_dir + "/checkpoint.bin"), std::string::npos)
        << e.what();
  }
}

// The Evaluator gets the current weights (run in place by the engine) every eval_every steps and
// at the end; its scores go to the result and the metrics.
TEST(SftEval, TheEvaluatorScoresTheCurrentWeights) {
  const std::string dir = fresh_dir("evaluator");
  SftOptions o = tiny_run(dir);
  o.steps = 8;
  o.eval_every = 4;
  std::vector<std::vector<int32_t>> seen;  // greedy tokens of the model handed over, per call
  const Evaluator evaluate = [&](const Model& model, const ItemFormat&) {
    const auto prompt = model.tokenizer.encode("Q: 5+6-2= A: <think>", true, false);
    ModelRunner runner(model, 256);
    seen.push_back(generate(runner, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 24}}).paths[0].tokens);
    return HeldOutScore{.accuracy = 0.25 * double(seen.size()), .format_rate = 0.5, .mean_tokens = 24};
  };
  const SftResult r = run_sft(o, evaluate);
  ASSERT_EQ(seen.size(), 2u) << "step 4 and the end (step 8)";
  EXPECT_EQ(r.eval_accuracy, 0.5);
  EXPECT_EQ(r.eval_format, 0.5);
  // The last call saw the trained weights: the exported model generates the same tokens.
  const auto exported = load_model(r.model_path);
  ModelRunner runner(*exported, 256);
  const auto prompt = exported->tokenizer.encode("Q: 5+6-2= A: <think>", true, false);
  EXPECT_EQ(generate(runner, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 24}}).paths[0].tokens,
            seen.back());
  std::vector<std::pair<int64_t, double>> evals;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("eval_accuracy")) evals.emplace_back(j["step"], j["eval_accuracy"]);
  }
  EXPECT_EQ(evals, (std::vector<std::pair<int64_t, double>>{{4, 0.25}, {8, 0.5}}));
}

struct CliRun {
  int exit_code = -1;
  std::string err;
};

CliRun run_ponder(const std::string& args) {
  const std::string err = temp_path("sft_cli_err");
  // No core file from the injected aborts.
  const std::string cmd = "ulimit -c 0; " + std::string(PONDER_BINARY_DIR) + "/ponder " + args + " >/dev/null 2>" + err;
  const int status = std::system(cmd.c_str());
  std::ifstream in(err);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), std::string(std::istreambuf_iterator<char>(in), {})};
}

// A process that dies while it writes a checkpoint (std::abort after N bytes of file writes,
// deterministic where a timed kill was not) leaves the previous checkpoint readable, and the run
// resumes from it to exactly the losses of an uninterrupted run.
TEST(SftCheckpoint, SurvivesAnAbortMidWrite) {
  const std::string args = "train sft --task arith --preset tiny --steps 6 --batch 4 --save-every 1 --eval-count 0 "
                           "--seed 5 --quiet -t 1 --out ";
  const std::string whole = fresh_dir("abort_whole");
  ASSERT_EQ(run_ponder(args + whole).exit_code, 0);
  const auto size = int64_t(fs::file_size(whole + "/checkpoint.bin"));  // every checkpoint of this run
  const auto want = losses_in(whole + "/metrics.jsonl");
  ASSERT_EQ(want.size(), 6u);
  struct Case {
    int64_t abort_after;
    int64_t step;          // of the checkpoint left behind (0: none)
    int64_t tmp_bytes;     // of the unfinished temp file
  };
  for (const Case c : {Case{2 * size + size / 2, 2, size / 2}, Case{3 * size, 2, size}, Case{size / 3, 0, size / 3}}) {
    SCOPED_TRACE("abort after " + std::to_string(c.abort_after) + " bytes (checkpoints of " + std::to_string(size) + ")");
    const std::string dir = fresh_dir("abort_" + std::to_string(c.abort_after));
    const CliRun killed = run_ponder(args + dir + " --abort-after-bytes " + std::to_string(c.abort_after));
    EXPECT_EQ(killed.exit_code, 128 + SIGABRT) << killed.err;
    ASSERT_TRUE(fs::exists(dir + "/checkpoint.bin.tmp"));
    EXPECT_EQ(int64_t(fs::file_size(dir + "/checkpoint.bin.tmp")), c.tmp_bytes) << "the abort hit where it was told";
    if (c.step == 0) {
      EXPECT_FALSE(fs::exists(dir + "/checkpoint.bin"));
      const CliRun resumed = run_ponder(args + dir + " --resume");
      EXPECT_NE(resumed.exit_code, 0);
      EXPECT_NE(resumed.err.find("--resume: no checkpoint"), std::string::npos) << resumed.err;
      continue;
    }
    const Checkpoint ck = read_checkpoint(dir + "/checkpoint.bin");  // must not throw
    EXPECT_EQ(ck.step, c.step);
    const CliRun resumed = run_ponder(args + dir + " --resume");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(losses_in(dir + "/metrics.jsonl"), want);
    EXPECT_EQ(read_checkpoint(dir + "/checkpoint.bin").step, 6);
  }
}

}  // namespace
}  // namespace ponder
