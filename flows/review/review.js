// The review page's behaviour: verdict buttons and keys post one verdict, then the page reloads
// with the next detection (the server renders it). No framework, no build step.
"use strict";

(function () {
  const item = document.getElementById("item");
  const reviewer = document.getElementById("reviewer");
  const token = document.querySelector('meta[name="review-token"]').content;
  const saved = window.localStorage.getItem("dawnchorus-reviewer");
  if (saved) reviewer.value = saved;
  reviewer.addEventListener("change", function () {
    window.localStorage.setItem("dawnchorus-reviewer", reviewer.value.trim());
  });
  if (!item) return;

  // Two kinds of item: a detection to judge (verdicts), or a window to mark as an example of a
  // label (?mark=LABEL&windows=...: yes, no, unsure).
  const marking = item.dataset.mode === "mark";
  const player = document.getElementById("player");
  const other = document.getElementById("other-label");
  const status = document.getElementById("status");
  const buttons = item.querySelectorAll(marking ? "button[data-mark]" : "button[data-verdict]");
  let sending = false;

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  // What an automatic retrain (review --retrain-every N) did, said before the page reloads.
  function retrained(events) {
    return (events || []).map(function (e) {
      return e.refused ? "automatic retrain refused: " + e.refused
        : "retrained automatically after " + e.after_verdicts + " verdicts: " +
          (e.new_version ? "stored " : "unchanged: ") + e.classifier_id;
    }).join("; ");
  }

  async function send(verdict) {
    if (sending) return;
    const body = { key: item.dataset.key, label: item.dataset.label, reviewer: reviewer.value.trim() };
    body[marking ? "mark" : "verdict"] = verdict;
    if (!body.reviewer) { say("Type your name in Reviewer first.", true); reviewer.focus(); return; }
    if (verdict === "other") {
      body.corrected_label = other.value.trim();
      if (!body.corrected_label) { say("Type the species you heard, then Enter.", true); other.focus(); return; }
    }
    sending = true;
    buttons.forEach(function (b) { b.disabled = true; });
    say("saving " + verdict + "…", false);
    try {
      const response = await fetch(marking ? "/api/examples" : "/api/verdicts", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Review-Token": token },
        body: JSON.stringify(body),
      });
      const reply = await response.json().catch(function () { return {}; });
      if (!response.ok) throw new Error(reply.detail || ("HTTP " + response.status));
      const said = retrained(reply.retrained);
      if (said) say(said, false);
      window.location.reload();
    } catch (err) {
      say("Not saved: " + err.message, true);
      sending = false;
      buttons.forEach(function (b) { b.disabled = false; });
    }
  }

  buttons.forEach(function (b) {
    b.addEventListener("click", function () { send(marking ? b.dataset.mark : b.dataset.verdict); });
  });

  if (other) {
    other.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); send("other"); }
      if (event.key === "Escape") { other.blur(); }
    });
  }

  const keys = marking ? { y: "positive", n: "negative", u: "unsure" }
                       : { c: "correct", w: "wrong", u: "unsure" };
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (keys[key]) { event.preventDefault(); send(keys[key]); }
    else if (key === "o" && other) { event.preventDefault(); other.focus(); }
    else if (key === " ") {
      event.preventDefault();
      if (!player) { return; }
      if (player.paused) { player.play().catch(function () {}); } else { player.pause(); }
    }
  });
})();

// Active learning (?classifier=NAME): the Retrain button trains a new version from the verdicts,
// then the page reloads with the new version's metrics and queue.
(function () {
  const learning = document.getElementById("learning");
  if (!learning) return;
  const button = document.getElementById("retrain");
  const status = document.getElementById("retrain-status");
  const reviewer = document.getElementById("reviewer");
  const token = document.querySelector('meta[name="review-token"]').content;

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  button.addEventListener("click", async function () {
    const who = reviewer.value.trim();
    if (!who) { say("Type your name in Reviewer first.", true); reviewer.focus(); return; }
    button.disabled = true;
    say("retraining…", false);
    try {
      const response = await fetch("/api/learn/retrain", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Review-Token": token },
        body: JSON.stringify({ classifier: learning.dataset.classifier, reviewer: who }),
      });
      const reply = await response.json().catch(function () { return {}; });
      if (!response.ok) throw new Error(reply.detail || ("HTTP " + response.status));
      say((reply.new_version ? "stored " : "unchanged: ") + reply.classifier_id + " in " +
          reply.seconds + " s", false);
      window.location.reload();
    } catch (err) {
      say("Not retrained: " + err.message, true);
      button.disabled = false;
    }
  });
})();
