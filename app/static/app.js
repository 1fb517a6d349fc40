// The drawing page: a canvas, an upload control, and the public API (/predict/number, /predict?explain=true,
// /model, /feedback).
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const statusLine = document.getElementById("status");
const digitOut = document.getElementById("digit");
const confidenceOut = document.getElementById("confidence");
const bars = document.getElementById("bars");
const inputImg = document.getElementById("input");
const saliencyImg = document.getElementById("saliency");
const overlay = document.getElementById("boxes");
const octx = overlay.getContext("2d");
const digitList = document.getElementById("digits");
const answerPanel = document.getElementById("answer-panel");
const verdict = document.getElementById("verdict");
const errorDetail = document.getElementById("error-detail");
const feedbackBox = document.getElementById("feedback");
const thanks = document.getElementById("fb-thanks");
const DEBOUNCE_MS = 250;

let drawing = false;
let inked = false;
let timer = null;
let generation = 0; // answers to older requests are dropped
let view = { scale: 1, dx: 0, dy: 0 }; // upload pixels -> pad pixels (an uploaded file is shown fitted)

// ten bars, 0-9
const rows = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.dataset.digit = String(d);
  li.dataset.p = "0";
  li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span><span class="pct">0.0%</span>`;
  bars.appendChild(li);
  rows.push(li);
}

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

// the answer panel's state: empty, digit, number, refused or error (app.css shows its layer)
const VERDICTS = { empty: "Draw a digit or a number", refused: "Not a digit", error: "Could not read that" };

function setState(state, detail = "") {
  answerPanel.dataset.state = state;
  verdict.textContent = VERDICTS[state] || "";
  errorDetail.textContent = detail;
}

function resetAnswer(state = "empty") {
  setState(state);
  offerFeedback(null);
  digitOut.textContent = "";
  digitOut.dataset.digit = "";
  digitOut.classList.remove("long");
  confidenceOut.textContent = "";
  rows.forEach((li) => {
    li.dataset.p = "0";
    li.classList.remove("top");
    li.querySelector(".fill").style.width = "0";
    li.querySelector(".pct").textContent = "0.0%";
  });
  inputImg.removeAttribute("src");
  saliencyImg.removeAttribute("src");
  digitList.replaceChildren();
  octx.clearRect(0, 0, overlay.width, overlay.height);
}

// boxes round each digit read, labelled 18 CSS pixels high at whatever size the canvas is shown
function showBoxes(digits) {
  octx.clearRect(0, 0, overlay.width, overlay.height);
  const css = overlay.width / (overlay.clientWidth || overlay.width); // canvas pixels per CSS pixel
  const label = Math.round(18 * css);
  octx.lineWidth = 2 * css;
  octx.font = `bold ${label}px system-ui, sans-serif`;
  octx.textBaseline = "top";
  digits.forEach((d) => {
    const [x0, y0, x1, y1] = d.box.map((v, i) => v * view.scale + (i % 2 === 0 ? view.dx : view.dy));
    octx.strokeStyle = octx.fillStyle = "#0b57d0";
    octx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    // above the box where there is room, inside its top-left corner where there is not
    octx.fillText(String(d.digit), x0 + 2 * css, y0 >= label + 4 * css ? y0 - label - 2 * css : y0 + 2 * css);
  });
}

function showNumber(data) {
  setState("number");
  digitOut.textContent = data.number;
  digitOut.dataset.digit = data.number;
  digitOut.classList.toggle("long", data.number.length > 4);
  confidenceOut.textContent = `${(data.confidence * 100).toFixed(1)}%`;
  data.digits.forEach((d, i) => {
    const li = document.createElement("li");
    li.dataset.digit = String(d.digit);
    li.innerHTML = `<b>${d.digit}</b><span>${(d.confidence * 100).toFixed(1)}%</span>`;
    li.setAttribute("aria-label", `digit ${i + 1}: ${d.digit}, ${(d.confidence * 100).toFixed(1)}% confidence`);
    digitList.appendChild(li);
  });
}

function showAnswer(answer) {
  setState("digit");
  digitOut.textContent = String(answer.digit);
  digitOut.dataset.digit = String(answer.digit);
  confidenceOut.textContent = `${(answer.confidence * 100).toFixed(1)}%`;
  answer.probabilities.forEach((p, d) => {
    const li = rows[d];
    li.dataset.p = String(p);
    li.classList.toggle("top", d === answer.digit);
    li.querySelector(".fill").style.width = `${(p * 100).toFixed(2)}%`;
    li.querySelector(".pct").textContent = `${(p * 100).toFixed(1)}%`;
  });
  if (answer.explanation) {
    inputImg.src = answer.explanation.input_png;
    saliencyImg.src = answer.explanation.saliency_png;
  }
}

async function predict(body, contentType) {
  const mine = ++generation;
  setStatus("Reading…");
  try {
    const init = { method: "POST", body };
    if (contentType) init.headers = { "Content-Type": contentType };
    const response = await fetch("/predict/number", init);
    const data = await response.json();
    if (mine !== generation) return;
    if (!response.ok) {
      if (data.error && data.error.code === "not_a_digit") {
        resetAnswer("refused");
        setStatus("That does not look like a digit. Draw digits, 0 to 9, or upload a picture of a number.", true);
        offerFeedback({ body, requestId: response.headers.get("X-Request-ID"), answer: "not_a_digit", digits: 0 });
      } else {
        const message = data.error ? data.error.message : `HTTP ${response.status}`;
        resetAnswer("error");
        errorDetail.textContent = message;
        setStatus(message, true);
      }
      statusLine.dataset.code = data.error ? data.error.code : "";
      return;
    }
    statusLine.dataset.code = "";
    resetAnswer();
    offerFeedback({ body, requestId: response.headers.get("X-Request-ID"), answer: data.number, digits: data.digits.length });
    showBoxes(data.digits);
    if (data.digits.length === 1) {
      showAnswer(data.digits[0]);
      setStatus(`Read as ${data.number} by model ${data.model_version}.`);
      explain(body, contentType, mine);
    } else {
      showNumber(data);
      setStatus(`Read as the number ${data.number} (${data.digits.length} digits) by model ${data.model_version}.`);
    }
  } catch (err) {
    if (mine !== generation) return;
    resetAnswer("error");
    errorDetail.textContent = `The service did not answer: ${err}`;
    setStatus(errorDetail.textContent, true);
  }
}

// one digit: what the model saw and where it looked, from /predict?explain=true
async function explain(body, contentType, mine) {
  const init = { method: "POST", body };
  if (contentType) init.headers = { "Content-Type": contentType };
  try {
    const response = await fetch("/predict?explain=true", init);
    const data = await response.json();
    if (mine === generation && response.ok && data.explanation) {
      inputImg.src = data.explanation.input_png;
      saliencyImg.src = data.explanation.saliency_png;
    }
  } catch (err) {
    // the answer is shown already; the pictures are a bonus
  }
}

function predictCanvas() {
  if (!inked) return;
  pad.toBlob((blob) => predict(blob, "image/png"), "image/png");
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(predictCanvas, DEBOUNCE_MS);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
}

function startPen() {
  ctx.lineWidth = pad.height / 14;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#000";
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  startPen();
  const [x, y] = point(event);
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + 0.01, y + 0.01);
  ctx.stroke();
  inked = true;
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  ctx.lineTo(x, y);
  ctx.stroke();
  schedule();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  schedule();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function clearAll() {
  generation++;
  clearTimeout(timer);
  ctx.clearRect(0, 0, pad.width, pad.height);
  inked = false;
  view = { scale: 1, dx: 0, dy: 0 };
  resetAnswer();
  setStatus("Draw a digit or a number in the box.");
}
document.getElementById("clear").addEventListener("click", clearAll);
pad.addEventListener("keydown", (event) => {
  if (event.key === "Delete" || event.key === "Backspace" || event.key === "Escape") clearAll();
});

document.getElementById("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  clearAll();
  const form = new FormData();
  form.append("file", file);
  predict(form, null);
  const url = URL.createObjectURL(file); // show it on the pad, fitted, so the user sees what was sent
  const img = new Image();
  img.onload = () => {
    const scale = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * scale;
    const h = img.height * scale;
    view = { scale, dx: (pad.width - w) / 2, dy: (pad.height - h) / 2 };
    ctx.drawImage(img, view.dx, view.dy, w, h);
    URL.revokeObjectURL(url);
  };
  img.src = url;
  event.target.value = "";
});

// corrections: "Right", or "Wrong: it is ..." (a digit or "not a digit"; for a number, typed), sent with the
// image the answer was for to POST /feedback; shown only when the service takes them (GET /feedback/status)
let feedbackOn = false;
let corrected = null; // what the answer shown was for: { body, requestId, answer, digits }

function offerFeedback(info) {
  corrected = info;
  feedbackBox.dataset.step = info && feedbackOn ? "ask" : "none";
  // a number's correction is typed; so is a refused image's, which may have been a digit or a number
  feedbackBox.dataset.kind = info && info.digits === 1 ? "digit" : "number";
  feedbackBox.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  thanks.textContent = "";
  thanks.classList.remove("error");
}

async function sendFeedback(label) {
  if (!corrected) return;
  const sent = corrected;
  feedbackBox.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  const form = new FormData();
  const file = sent.body instanceof FormData ? sent.body.get("file") : sent.body;
  form.append("file", file, file.name || "drawing.png");
  form.append("label", label);
  form.append("endpoint", "number"); // the page reads everything at /predict/number
  if (sent.requestId) form.append("request_id", sent.requestId);
  try {
    const response = await fetch("/feedback", { method: "POST", body: form });
    const data = await response.json();
    if (sent !== corrected) return; // a new answer came meanwhile
    feedbackBox.dataset.step = "thanks";
    if (response.ok) {
      const what = label === "not_a_digit" ? "not a digit" : label;
      thanks.textContent = data.right ? "Thanks: noted as right." : `Thanks: noted that it is ${what}.`;
    } else {
      thanks.textContent = `Not saved: ${data.error ? data.error.message : `HTTP ${response.status}`}`;
      thanks.classList.add("error");
    }
  } catch (err) {
    feedbackBox.dataset.step = "thanks";
    thanks.textContent = `Not saved: the service did not answer (${err})`;
    thanks.classList.add("error");
  }
}

function setUpFeedback() {
  const choices = document.getElementById("fb-digits");
  for (const [label, text] of [..."0123456789"].map((d) => [d, d]).concat([["not_a_digit", "not a digit"]])) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = text;
    b.dataset.label = label;
    b.addEventListener("click", () => sendFeedback(label));
    choices.append(b);
  }
  document.getElementById("fb-right").addEventListener("click", () => corrected && sendFeedback(corrected.answer));
  document.getElementById("fb-wrong").addEventListener("click", () => {
    feedbackBox.dataset.step = "choose";
    const first = feedbackBox.dataset.kind === "number" ? document.getElementById("fb-number-input") : choices.firstChild;
    first.focus();
  });
  document.getElementById("fb-number").addEventListener("submit", (event) => {
    event.preventDefault();
    sendFeedback(document.getElementById("fb-number-input").value.trim());
  });
  document.getElementById("fb-not-number").addEventListener("click", () => sendFeedback("not_a_digit"));
}

async function feedbackState() {
  try {
    const response = await fetch("/feedback/status");
    feedbackOn = response.ok && (await response.json()).enabled === true;
  } catch (err) {
    feedbackOn = false;
  }
  feedbackBox.hidden = !feedbackOn;
}

// what the training recipe added to the plain one, as model.train records it
function recipe(t) {
  const parts = [];
  if (t.elastic) parts.push(`elastic distortion ${t.elastic} px`);
  if (t.ema) parts.push(`weight average (decay ${t.ema})`);
  if (t.teachers && t.teachers.length) {
    parts.push(`distilled from ${t.teachers.length} trained networks (weight ${t.distill_weight}, temperature ${t.distill_temperature})`);
  }
  if (t.negatives) parts.push(`${t.negatives} non-digits of each kind trained towards an even spread`);
  return parts.map((p) => `, ${p}`).join("");
}

function refusalLine(r) {
  if (!r) return "It always answers a digit: a letter or a doodle gets the nearest digit, mostly with low confidence.";
  if (r.threshold === null) return "Refusal is off here (DIGITS_REFUSAL_RATE=0): every image gets a digit.";
  const pct = (x) => `${(x * 100).toFixed(1)}%`;
  const who = r.score === "digit_gate"
    ? 'A second, small network checks that there is a digit at all: letters, doodles and textures are answered "not a digit".'
    : 'It answers "not a digit" when unsure.';
  return `${who} Set to turn away ${pct(r.rates.canvas)} of held-out digits drawn on a canvas, ` +
    `${pct(r.rates.photo)} of photographed and ${pct(r.rates.clean)} of other ones.`;
}

function addEntries(list, entries) {
  for (const [name, value] of entries) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = value;
    list.append(dt, dd);
  }
}

// what a person wants to know first (what it reads, how well, from what); the rest under "Technical details"
async function modelCard() {
  const card = document.getElementById("card");
  try {
    const response = await fetch("/model");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const m = await response.json();
    const t = m.train_config || {};
    const trained = (t.limit || 60000) - (t.val_size || 0);
    const sources = [`${trained.toLocaleString("en")} handwritten MNIST digits`];
    if (t.fonts) sources.push("printed digits in common fonts");
    if (t.negatives) sources.push("non-digits (letters, doodles, textures) it learns to be unsure of");
    addEntries(card, [
      ["Reads", "Digits 0 to 9, alone or side by side in a number: drawn here, handwritten on paper, printed, photographed or scanned."],
      ["Accuracy", `${(m.metrics.test_accuracy * 100).toFixed(2)}% of the ${m.metrics.test_n.toLocaleString("en")} handwritten MNIST test digits, which it never saw in training.`],
      ["Trained on", `${sources.slice(0, -1).join(", ")}${sources.length > 1 ? " and " : ""}${sources.at(-1)}.`],
      ["Not a digit", refusalLine(m.refusal)],
    ]);
    const layers = document.createElement("ol");
    layers.className = "layers-list";
    for (const layer of m.architecture.layers) {
      const li = document.createElement("li");
      li.textContent = layer.replaceAll(" -> ", "\u00a0→ "); // an arrow never starts a line
      layers.append(li);
    }
    const sha = document.createElement("code");
    sha.textContent = m.checkpoint.sha256;
    const checkpoint = document.createElement("span");
    checkpoint.append(`version ${m.checkpoint.version}, SHA-256 `, sha);
    addEntries(document.getElementById("card-details"), [
      ["Network", layers],
      ["Parameters", m.parameters.toLocaleString("en")],
      ["Checkpoint", checkpoint],
      ["Trained", `${m.created_at || "unknown"}, torch ${m.torch_version || "?"}`],
      ["Recipe", `${t.epochs} epochs, batches of ${t.batch_size}, AdamW with a one-cycle learning rate up to ${t.lr}, augmentation ${t.augment ? "on" : "off"}${recipe(t)}, seed ${t.seed}; the best epoch on ${t.val_size} held-out digits kept`],
      ["Confidence", `the probabilities are scaled by a softmax temperature of ${Number(m.metrics.temperature).toFixed(3)}, fitted on held-out digits so that stated confidence matches how often it is right`],
    ]);
  } catch (err) {
    card.textContent = `Model information is not available: ${err}`;
  }
}

[inputImg, saliencyImg].forEach((img) => img.addEventListener("error", () => img.removeAttribute("src")));
// a checkpoint without model.evaluate's pictures: their figures go (even when they failed before
// this deferred script ran), not broken images
document.querySelectorAll(".report img").forEach((img) => {
  const drop = () => img.closest("figure").remove();
  if (img.complete && img.naturalWidth === 0) drop();
  else img.addEventListener("error", drop);
});

setUpFeedback();
resetAnswer();
modelCard();
feedbackState();
