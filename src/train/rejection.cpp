#include "train/rejection.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "decode/item_format.h"
#include "decode/model_runner.h"
#include "decode/paths.h"
#include "model/model.h"
#include "tasks/dataset.h"
#include "tasks/reward.h"

namespace ponder {

void RejectionOptions::validate() const {
  auto range = [](bool ok, const std::string& flag, const std::string& allowed, const std::string& got) {
    if (!ok) throw InvalidArgument(flag + " must be " + allowed + ", got " + got);
  };
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  if (task.name.empty() == data_path.empty()) throw InvalidArgument("give exactly one of --task NAME or --data FILE");
  if (!task.name.empty()) validate_task_options(task);
  if (model.empty()) throw InvalidArgument("--model FILE is required");
  if (output.empty()) throw InvalidArgument("-o FILE is required (the SFT JSONL to write)");
  range(samples >= 1 && samples <= 1024, "--samples", "in [1, 1024]", std::to_string(samples));
  range(count >= 1, "--count", ">= 1", std::to_string(count));
  range(max_tokens >= 1, "--max-tokens", ">= 1", std::to_string(max_tokens));
  range(prompts_per_batch >= 1, "prompts_per_batch", ">= 1", std::to_string(prompts_per_batch));
  range(temperature > 0 && temperature < INFINITY, "--temperature", "finite and > 0", num(temperature));
  range(top_p > 0 && top_p <= 1, "--top-p", "in (0, 1] (1: off)", num(top_p));
  range(top_k >= 0, "--top-k", ">= 0 (0: off)", std::to_string(top_k));
}

RejectionResult rejection_sample(const RejectionOptions& o) {
  o.validate();
  const auto t0 = std::chrono::steady_clock::now();
  const auto model = load_model(o.model);
  std::vector<TaskItem> items;
  if (o.data_path.empty()) {
    TaskOptions t = o.task;
    t.split = Split::Train;
    items = generate_items(t, o.count);
  } else {
    items = read_rl_dataset(o.data_path);
    if (int(items.size()) > o.count) items.resize(size_t(o.count));
  }
  // Prompted in the model's format; the written examples hold what an SFT file of that format holds.
  const ItemFormat format = item_format_of(model->file);
  for (TaskItem& item : items) item = format.apply(std::move(item));
  RejectionResult r;
  std::string out;
  for (size_t b0 = 0; b0 < items.size(); b0 += size_t(o.prompts_per_batch)) {
    const size_t b1 = std::min(items.size(), b0 + size_t(o.prompts_per_batch));
    std::vector<std::vector<int32_t>> prompts;
    std::vector<PathsOptions> opts;
    for (size_t i = b0; i < b1; ++i) {
      prompts.push_back(model->tokenizer.encode(items[i].prompt, true, true));
      opts.push_back({.n = o.samples, .sampling = {.temperature = o.temperature, .top_k = o.top_k, .top_p = o.top_p},
                      .seed = o.seed, .path_offset = uint64_t(i) * uint64_t(o.samples)});
    }
    size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, p.size());
    // A completion stops at the model's context.
    const int max_tokens = max_tokens_within_context(o.max_tokens, int64_t(longest), model->config.n_ctx_train);
    ModelRunner runner(*model, kv_positions_for(prompts, o.samples, max_tokens));
    const auto paths = run_paths_batch(runner, prompts, opts, {.max_tokens = max_tokens});
    for (size_t i = b0; i < b1; ++i) {
      ++r.prompts;
      std::set<std::string> seen;
      for (const Path& p : paths[i - b0]) {
        ++r.drawn;
        const bool ok = accuracy_reward(p.text, items[i]) == 1.0f &&
                        (!o.require_format || format_reward(p.text, items[i].style) == 1.0f);
        if (!ok) continue;
        std::string line;
        try {
          line = sft_json_line(SftExample{.prompt = format.data_prompt(items[i]), .completion = p.text});
        } catch (const InvalidArgument&) {
          continue;  // sampled bytes that are not UTF-8 text: not SFT data
        }
        ++r.accepted;
        if (!seen.insert(p.text).second) continue;  // the same completion once
        ++r.unique_accepted;
        out += line + "\n";
      }
      r.prompts_with_accept += seen.empty() ? 0 : 1;
    }
  }
  AtomicFile f(o.output);
  f.write(out.data(), out.size());
  f.commit();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace ponder
