#include "server/web_page.h"

namespace ponder::server {

const std::string& web_page() {
  static const std::string page = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ponder</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }
  header { padding: 10px 16px; background: #263238; color: #fff; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
  header b { font-size: 17px; }
  header label { font-size: 13px; }
  header select, header input { margin-left: 4px; }
  #log { padding: 16px; max-width: 1200px; margin: 0 auto 140px; }
  .turn { margin: 12px 0; }
  .user { background: #dcedc8; padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; }
  .paths { display: flex; gap: 10px; margin-top: 8px; }
  .path { flex: 1 1 0; min-width: 0; background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 8px 12px; }
  .path.winner { border-color: #2e7d32; box-shadow: 0 0 0 1px #2e7d32; }
  .meta { font-size: 12px; color: #666; margin-bottom: 4px; }
  details.reasoning { background: #f1f3f4; border-radius: 6px; padding: 4px 8px; margin-bottom: 6px; }
  details.reasoning summary { cursor: pointer; color: #555; font-size: 13px; }
  .reasoning-text, .answer { white-space: pre-wrap; }
  /* Long unbroken strings (URLs, digits, a small model's babble) wrap instead of widening the page. */
  .user, .reasoning-text, .answer, .meta, .error, table.votes td, table.votes th { overflow-wrap: anywhere; }
  .reasoning-text { color: #555; font-size: 13px; }
  table.votes { border-collapse: collapse; margin-top: 8px; font-size: 13px; }
  table.votes td, table.votes th { border: 1px solid #ccc; padding: 2px 8px; }
  .error { color: #b71c1c; white-space: pre-wrap; }
  form { position: fixed; bottom: 0; left: 0; right: 0; background: #eceff1; padding: 10px 16px; display: flex; gap: 8px; }
  textarea { flex: 1; height: 56px; font: inherit; }
  button { padding: 0 18px; }
</style>
</head>
<body>
<header>
  <b>ponder</b>
  <label>strategy
    <select id="strategy">
      <option value="greedy">greedy</option>
      <option value="sample">sample n</option>
      <option value="beam">beam</option>
      <option value="best-of">best-of</option>
      <option value="vote">vote</option>
    </select></label>
  <label>width <input id="width" type="number" min="1" max="16" value="4" style="width:4em"></label>
  <label>max tokens <input id="max_tokens" type="number" min="1" value="512" style="width:5em"></label>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7" style="width:4em"></label>
  <label>API key <input id="key" type="password" style="width:8em"></label>
  <span id="model" class="meta"></span>
</header>
<div id="log"></div>
<form id="form">
  <textarea id="prompt" placeholder="Ask something (Enter sends, Shift+Enter for a new line)"></textarea>
  <button id="send" type="submit">Send</button>
</form>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const history = [];

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// One column: meta line, collapsible reasoning, answer.
function pathBox(parent, title) {
  const box = el("div", "path");
  const meta = el("div", "meta", title);
  const det = el("details", "reasoning");
  det.open = true;
  det.appendChild(el("summary", "", "reasoning"));
  const rtext = el("div", "reasoning-text");
  det.appendChild(rtext);
  det.style.display = "none";
  const answer = el("div", "answer");
  box.append(meta, det, answer);
  parent.appendChild(box);
  return { box, meta, det, rtext, answer, reasoning: "", content: "" };
}

function show(p, reasoning, content) {
  if (reasoning) { p.reasoning += reasoning; p.rtext.textContent = p.reasoning; p.det.style.display = ""; }
  if (content) { p.content += content; p.answer.textContent = p.content; if (p.reasoning) p.det.open = false; }
}

function requestBody(messages) {
  const s = $("strategy").value, w = Math.max(1, parseInt($("width").value || "1"));
  const body = { model: "ponder", messages, max_tokens: parseInt($("max_tokens").value || "512"),
                 temperature: parseFloat($("temperature").value || "0.7") };
  if (s === "greedy") { body.temperature = 0; body.stream = true; }
  else if (s === "sample") { body.n = w; body.stream = true; }
  else if (s === "beam") { body.ponder = { strategy: "beam", beams: w }; body.n = 1; }
  else if (s === "best-of") { body.ponder = { strategy: "best-of", samples: w }; body.n = w; }
  else { body.ponder = { strategy: "vote", samples: w }; body.n = w; }
  return body;
}

async function send(text) {
  history.push({ role: "user", content: text });
  const turn = el("div", "turn");
  turn.appendChild(el("div", "user", text));
  const row = el("div", "paths");
  turn.appendChild(row);
  $("log").appendChild(turn);
  const body = requestBody(history.slice());
  const boxes = [];
  const box = (i) => boxes[i] || (boxes[i] = pathBox(row, "path " + i));
  try {
    const res = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!res.ok) {
      const e = await res.json().catch(() => ({}));
      throw new Error((e.error && e.error.message) || ("HTTP " + res.status));
    }
    if (body.stream) {
      const reader = res.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          const line = buf.slice(0, at).trim();
          buf = buf.slice(at + 2);
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          for (const c of chunk.choices || []) {
            const p = box(c.index);
            show(p, c.delta.reasoning_content, c.delta.content);
            if (c.finish_reason) p.meta.textContent = "path " + c.index + " · " + c.finish_reason;
          }
        }
      }
    } else {
      const r = await res.json();
      const info = r.ponder || { paths: [] };
      r.choices.forEach((c, i) => {
        const p = box(i), pi = info.paths[i] || {};
        show(p, c.message.reasoning_content, c.message.content);
        p.meta.textContent = "path " + pi.index + " · score " + (pi.score === null ? "-" : Number(pi.score).toFixed(4)) +
                             " · " + c.finish_reason + (pi.extracted_answer ? " · answer " + pi.extracted_answer : "");
        if (info.winner && pi.extracted_answer === info.winner) p.box.classList.add("winner");
      });
      if (info.votes) {
        const t = el("table", "votes");
        t.appendChild(el("tr")).append(el("th", "", "answer"), el("th", "", "votes"), el("th", "", "weight"));
        for (const v of info.votes) t.appendChild(el("tr")).append(el("td", "", v.answer), el("td", "", v.count), el("td", "", v.weight.toFixed(3)));
        turn.appendChild(t);
      }
    }
    const first = boxes[0];
    if (first) history.push({ role: "assistant", content: first.content });
  } catch (err) {
    history.pop();
    turn.appendChild(el("div", "error", String(err.message || err)));
  }
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("prompt").value.trim();
  if (!text) return;
  $("prompt").value = "";
  send(text);
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
fetch("/v1/models", { headers: headers() }).then((r) => r.json()).then((m) => {
  if (m.data) $("model").textContent = m.data[0].id + " · context " + m.data[0].meta.n_ctx;
}).catch(() => {});
</script>
</body>
</html>
)PAGE";
  return page;
}

}  // namespace ponder::server
