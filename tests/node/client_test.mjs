// The official openai SDK against a running `ponder serve` (started by tests/server/serve_process_test.cpp
// on the tiny R1-Distill fixture, with an API key). Run: PONDER_URL=http://127.0.0.1:PORT/v1
// PONDER_KEY=KEY node --test tests/node/client_test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = process.env.PONDER_URL;
const apiKey = process.env.PONDER_KEY;
assert.ok(baseURL && apiKey, "PONDER_URL and PONDER_KEY must be set");
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const messages = [{ role: "user", content: "What is 17*23? Think it through." }];

test("models.list names the served model", async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, "tiny-r1");
});

test("chat: reasoning_content beside content, usage with reasoning tokens", async () => {
  const r = await client.chat.completions.create({ model: "tiny-r1", messages, max_tokens: 16, temperature: 0,
                                                   thinking_token_budget: 4 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 1);
  const m = r.choices[0].message;
  assert.equal(m.role, "assistant");
  assert.equal(typeof m.reasoning_content, "string");
  assert.ok(m.reasoning_content.length > 0);
  assert.equal(typeof m.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.completion_tokens, 16);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 16);
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 6); // 4 tokens, "\n", "</think>"
});

test("streaming: reasoning deltas, then content deltas, add up to the whole message", async () => {
  const body = { model: "tiny-r1", messages, max_tokens: 16, temperature: 0, thinking_token_budget: 4, logprobs: true };
  const wholeChoice = (await client.chat.completions.create(body)).choices[0];
  const whole = wholeChoice.message;
  const logprobs = [];
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let reasoning = "", content = "", sawContentBeforeReasoningEnded = false, usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.reasoning_content) {
        if (content) sawContentBeforeReasoningEnded = true;
        reasoning += c.delta.reasoning_content;
      }
      if (c.delta.content) content += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
      if (c.logprobs) logprobs.push(...c.logprobs.content);
    }
  }
  assert.equal(reasoning.trim(), whole.reasoning_content);
  assert.equal(content, whole.content);
  assert.equal(sawContentBeforeReasoningEnded, false);
  assert.deepEqual(logprobs, wholeChoice.logprobs.content); // each chunk carries its tokens' log-probs
  assert.ok(finish);
  assert.equal(usage.completion_tokens, 16);
});

test("n=4 returns four choices sharing one prompt", async () => {
  const r = await client.chat.completions.create({ model: "tiny-r1", messages, max_tokens: 8, n: 4, seed: 3 });
  assert.equal(r.choices.length, 4);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
  assert.equal(r.usage.completion_tokens, 32);
});

test("logprobs with top_logprobs", async () => {
  const r = await client.chat.completions.create({ model: "tiny-r1", messages, max_tokens: 5, temperature: 0,
                                                   logprobs: true, top_logprobs: 2 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, 5);
  for (const t of lp) {
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs[0].logprob, t.logprob); // greedy: the chosen token is the most probable
  }
});

test("completions with best_of return the n best and count every sample", async () => {
  const r = await client.completions.create({ model: "tiny-r1", prompt: "Once upon a time", max_tokens: 6,
                                             best_of: 4, n: 2, seed: 1 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices.length, 2);
  assert.equal(r.usage.completion_tokens, 24);
});

test("beam search through the extra body (vLLM's use_beam_search) and ponder's vote", async () => {
  const beam = await client.chat.completions.create({ model: "tiny-r1", messages, max_tokens: 6, n: 2,
                                                      use_beam_search: true });
  assert.equal(beam.choices.length, 2);
  assert.equal(beam.ponder.strategy, "beam");
  assert.ok(beam.ponder.paths[0].score >= beam.ponder.paths[1].score);
  const vote = await client.chat.completions.create({ model: "tiny-r1", messages, max_tokens: 6, seed: 2,
                                                      ponder: { strategy: "vote", samples: 4 } });
  assert.equal(vote.ponder.strategy, "vote");
  assert.ok(Array.isArray(vote.ponder.votes));
  assert.equal(vote.ponder.paths.length, 4);
});

test("errors arrive as the SDK's error classes with the field at fault", async () => {
  await assert.rejects(client.chat.completions.create({ model: "tiny-r1", messages, temperature: 5 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, "temperature");
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: "tiny-r1", messages: [] }), OpenAI.BadRequestError);
  const wrongKey = new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError);
    assert.equal(e.code, "invalid_api_key");
    return true;
  });
  await assert.rejects(client.get("/no-such-route"), OpenAI.NotFoundError);
});
