// The customs officer's console. Server answers (verdict, findings, queue) are shown as
// the service's; the cryptographic evidence is re-checked here (independent.js) against
// the chain read directly, so a compromised service cannot show a confirmed record that
// is not on chain.
import "./style.css";
import jsQR from "jsqr";
import { checkBundle } from "./independent.js";
import { custodyGraph } from "./graph.js";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("console-key"), me: null, service: null, reasons: new Map(), names: new Map() };

class Refused extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (body && (body.detail || body.title)) || response.statusText;
    throw new Refused(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

function refusalText(err) {
  if (err.status === 401) return `Refused: this key was not accepted (${err.message}).`;
  if (err.status === 403) return `Refused: ${err.message}.`;
  return `Failed: ${err.message}`;
}

function text(tag, content, cls) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (cls) node.className = cls;
  return node;
}

// ---------------------------------------------------------------------- sign-in

async function signIn(token) {
  state.token = token;
  try {
    state.me = await api("/v1/console/me");
  } catch (err) {
    state.token = null;
    sessionStorage.removeItem("console-key");
    $("sign-in-status").textContent = refusalText(err);
    return false;
  }
  sessionStorage.setItem("console-key", token);
  const canAct = state.me.scopes.includes("customs") || state.me.scopes.includes("admin");
  $("sign-in").hidden = true;
  $("desk").hidden = false;
  $("case").hidden = true;
  $("sign-out").hidden = false;
  $("sign-in-status").textContent = "";
  await Promise.all([loadService(), loadReasons(), loadFindingCodes(), refreshQueue()]);
  $("query").focus();
  $("who").textContent = `Signed in as ${state.me.name} (${state.me.scopes.join(", ")})${canAct ? "" : " — read-only: verifying and recording findings need the customs scope"}`;
  return true;
}

function signOut() {
  state.token = null;
  state.me = null;
  sessionStorage.removeItem("console-key");
  $("desk").hidden = true;
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("api-key").value = "";
  $("api-key").focus();
}

async function loadReasons() {
  for (const r of await api("/v1/reason-codes")) state.reasons.set(r.code, r);
}

async function loadFindingCodes() {
  const select = $("finding-code");
  select.replaceChildren();
  for (const f of await api("/v1/console/finding-codes")) {
    const option = text("option", `${f.label} (${f.code})`);
    option.value = f.code;
    select.append(option);
  }
}

// ------------------------------------------------- which chain the browser trusts

async function loadService() {
  state.service = await api("/console/config.json");
  showChain();
}

function chainConfig() {
  const pinned = JSON.parse(localStorage.getItem("console-chain") || "null");
  return pinned || state.service;
}

function showChain() {
  const c = chainConfig();
  $("rpc-url").value = c.rpcUrl;
  $("ledger-address").value = c.ledger;
  $("chain-id").value = c.chainId;
  const pinned = localStorage.getItem("console-chain") !== null;
  $("chain-status").textContent = pinned
    ? `Pinned in this browser: ledger ${c.ledger} on chain ${c.chainId} via ${c.rpcUrl}.`
    : `The service's setting: ledger ${c.ledger} on chain ${c.chainId} via ${c.rpcUrl}.`;
}

// ------------------------------------------------------------------------ finding

async function find(query) {
  $("find-status").textContent = `Looking up ${query}…`;
  $("matches").replaceChildren();
  let found;
  try {
    found = await api(`/v1/console/lookup?q=${encodeURIComponent(query)}`);
  } catch (err) {
    $("find-status").textContent = refusalText(err);
    return;
  }
  const how = found.readAs.length ? ` (read as ${found.readAs.join("; ")})` : "";
  if (found.shipments.length === 0) {
    $("find-status").textContent = `No shipment found for ${query}${how}.`;
    return;
  }
  $("find-status").textContent = `${found.shipments.length} shipment${found.shipments.length > 1 ? "s" : ""} found for ${query}${how}.`;
  if (found.shipments.length === 1) return openShipment(found.shipments[0].uid);
  for (const s of found.shipments) {
    const li = document.createElement("li");
    const button = text("button", `${s.shipmentId || s.uid.slice(0, 12) + "…"}: ${s.quantity ?? "?"} ${s.unit || ""} of ${s.goodsClass || "?"} to ${s.destination || "?"}`);
    button.type = "button";
    button.addEventListener("click", () => openShipment(s.uid));
    li.append(button);
    $("matches").append(li);
  }
}

async function openShipment(uid) {
  const bundle = api(`/v1/shipments/${uid}/bundle`).catch((err) => err);
  const verdict = api(`/v1/shipments/${uid}/verify`, { method: "POST" }).catch((err) => err);
  await showCase(uid, await verdict, await bundle, "shipment recorded at this service");
  refreshQueue();
}

async function openBundle(file) {
  let bundle;
  try {
    bundle = JSON.parse(await file.text());
  } catch (err) {
    $("find-status").textContent = `${file.name} is not JSON: ${err.message}`;
    return;
  }
  $("find-status").textContent = `Verifying the bundle ${file.name}…`;
  const verdict = await api("/v1/bundles/verify", { method: "POST", json: bundle }).catch((err) => err);
  await showCase(bundle.shipment, verdict, bundle, `bundle ${file.name}`);
  $("find-status").textContent = `Opened the bundle ${file.name}.`;
  refreshQueue();
}

// -------------------------------------------------------------------- the verdict

const PLAIN = {
  VERIFIED: "The chain of custody and the licences hold up. The goods may go on.",
  FLAGGED: "Something is wrong with these goods' history. Hold them and read the findings.",
  UNVERIFIABLE: "The evidence could not be checked completely. Treat the goods as unverified.",
};

async function showCase(uid, verdict, bundle, source) {
  state.current = { uid, bundle: bundle instanceof Error ? null : bundle };
  $("independent-result").textContent = "Checking…";
  $("independent-result").className = "independent";
  $("independent-problems").replaceChildren();
  $("graph").replaceChildren();
  $("case").hidden = false;
  $("case-of").textContent = `Shipment ${uid} — ${source}`;
  const refused = verdict instanceof Error;
  $("verdict-refused").hidden = !refused;
  if (refused) {
    $("verdict-word").textContent = "No verdict";
    $("verdict-word").className = "verdict none";
    $("verdict-plain").textContent = "The service gave no verdict for this key.";
    $("verdict-refused").textContent = refusalText(verdict);
  } else {
    $("verdict-word").textContent = verdict.verdict;
    $("verdict-word").className = `verdict ${verdict.verdict.toLowerCase()}`;
    $("verdict-plain").textContent = `${PLAIN[verdict.verdict] || ""} (the service's verdict)`;
  }
  showRisk(refused ? null : verdict);
  showFindings(refused ? [] : verdict.findings);
  showChecks(refused ? [] : verdict.checks);
  showCompleteness(refused ? null : verdict);
  $("record").hidden = !(state.me.scopes.includes("customs") || state.me.scopes.includes("admin"));
  $("finding-status").textContent = "";
  if (state.current.bundle) {
    await showParties(state.current.bundle);
    showGraph(state.current.bundle, refused ? [] : verdict.findings);
  } else {
    $("graph").replaceChildren(text("p", bundle instanceof Error ? refusalText(bundle) : "No evidence."));
  }
  $("case").focus();
  await showIndependent(state.current.bundle, refused ? null : verdict);
}

function showRisk(v) {
  $("risk-score").textContent = v ? `${v.riskScore} / 100` : "–";
  const list = $("risk-factors");
  list.replaceChildren();
  for (const f of v ? v.riskFactors : []) list.append(text("li", `${f.factor} (+${f.points}): ${f.why}`));
  if (v && v.riskFactors.length === 0) list.append(text("li", "No risk factors."));
}

function showFindings(findings) {
  const body = $("findings").querySelector("tbody");
  body.replaceChildren();
  $("no-findings").hidden = findings.length > 0;
  $("findings").hidden = findings.length === 0;
  for (const f of findings) {
    const row = document.createElement("tr");
    const info = state.reasons.get(f.code);
    row.append(text("td", f.code, "code"), text("td", f.message), text("td", info ? info.officerAction : ""));
    body.append(row);
  }
}

function showChecks(checks) {
  const list = $("checks");
  list.replaceChildren();
  for (const c of checks) {
    const li = document.createElement("li");
    li.append(text("span", c.status, `badge ${c.status.toLowerCase()}`), text("span", ` ${c.check.replace(/_/g, " ")}`));
    if (c.detail) li.append(text("span", ` — ${c.detail}`, "detail"));
    list.append(li);
  }
}

function showCompleteness(v) {
  const c = v && v.completeness;
  if (!v) $("completeness").textContent = "–";
  else if (!c) $("completeness").textContent = "No copy of the public ledger was used: the evidence is only what was presented.";
  else {
    const parts = [];
    for (const [k, val] of Object.entries(c)) if (val !== null && typeof val !== "object") parts.push(`${k}: ${val}`);
    $("completeness").textContent = `${parts.join("; ")}. Evaluated at ${new Date(v.evaluatedAt * 1000).toISOString()}.`;
  }
  const list = $("notices");
  list.replaceChildren();
  for (const n of v ? v.notices : []) list.append(text("li", `${n.code}: ${n.message}`));
}

async function showParties(bundle) {
  const list = $("parties");
  list.replaceChildren();
  const addresses = [...new Set(bundle.attestations.map((a) => a.typedData.message.attester))];
  for (const address of addresses) {
    let label = address;
    try {
      const p = await api(`/v1/participants/${address}`);
      label = `${p.roles.join(", ") || "no roles"} ${address}${p.suspended ? " (suspended)" : ""}`;
      state.names.set(address.toLowerCase(), `${p.roles[0] || "?"} ${address.slice(0, 8)}…`);
    } catch {
      label = `${address} (not registered)`;
    }
    list.append(text("li", label));
  }
}

function showGraph(bundle, findings) {
  const sets = findings.map((f) => f.uids.map((u) => u.toLowerCase())).filter((s) => s.length);
  const { svg, list } = custodyGraph(bundle, sets, (a) => state.names.get(String(a).toLowerCase()));
  $("graph").replaceChildren(svg);
  $("graph-text").replaceChildren(list);
}

async function showIndependent(bundle, verdict) {
  const result = $("independent-result");
  const problems = $("independent-problems");
  const records = $("independent-records");
  problems.replaceChildren();
  records.replaceChildren();
  if (!bundle) {
    result.textContent = "Not checked: no evidence to check.";
    result.className = "independent failed";
    return;
  }
  result.textContent = "Checking signatures, commitments and Merkle inclusion against the chain…";
  result.className = "independent";
  const report = await checkBundle(bundle, chainConfig());
  const n = report.records.length;
  if (report.confirmed) {
    result.textContent = `Independently confirmed: ${n} records — signatures, disclosed fields and inclusion in ${report.rootsChecked} batch root${report.rootsChecked === 1 ? "" : "s"} read from chain ${report.chain.chainId}.`;
    result.className = "independent confirmed";
  } else {
    const contradiction = verdict && verdict.verdict === "VERIFIED" ? " The service says VERIFIED: do not rely on it." : "";
    result.textContent = `NOT confirmed in this browser: ${report.problems.length} problem${report.problems.length === 1 ? "" : "s"}.${contradiction}`;
    result.className = "independent failed";
    for (const p of report.problems) problems.append(text("li", p));
  }
  for (const r of report.records) {
    const li = text("li", `${r.ok ? "✓" : "✗"} ${r.kind} ${r.uid.slice(0, 12)}… — ${r.items.map((i) => `${i.what}: ${i.ok ? "ok" : i.detail}`).join("; ")}`);
    if (!r.ok) li.className = "bad";
    records.append(li);
  }
}

// ----------------------------------------------------------------- record finding

async function recordFinding(event) {
  event.preventDefault();
  const status = $("finding-status");
  const code = $("finding-code").value;
  status.textContent = "Signing with the customs key…";
  try {
    const out = await api("/v1/console/findings", {
      method: "POST",
      json: { shipment: state.current.uid, finding: code, note: $("finding-note").value },
    });
    status.textContent = `Finding ${out.finding} recorded (${out.uid.slice(0, 12)}…), signed by the customs key ${out.attester}. Verifying again…`;
    await openShipment(state.current.uid);
    $("finding-status").textContent = `Finding ${out.finding} recorded, signed by the customs key ${out.attester}; the verification above includes it.`;
  } catch (err) {
    status.textContent = refusalText(err);
  }
}

// --------------------------------------------------------------------- the queue

async function refreshQueue() {
  const wanted = [...document.querySelectorAll("input[name=queue-verdict]:checked")].map((i) => i.value);
  const list = $("queue");
  if (wanted.length === 0) {
    list.replaceChildren();
    $("queue-count").textContent = "Nothing selected.";
    return;
  }
  let body;
  try {
    body = await api(`/v1/console/queue?${wanted.map((v) => `verdict=${v}`).join("&")}`);
  } catch (err) {
    $("queue-count").textContent = refusalText(err);
    return;
  }
  list.replaceChildren();
  const counts = {};
  for (const e of body.entries) counts[e.verdict] = (counts[e.verdict] || 0) + 1;
  $("queue-count").textContent = body.entries.length
    ? `${body.entries.length} in the queue: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")}.`
    : "The queue is empty.";
  for (const e of body.entries) {
    const li = document.createElement("li");
    const label = `${e.verdict} — ${e.shipment.slice(0, 14)}… — ${new Date(e.at * 1000).toLocaleString()} by ${e.askedBy}`;
    if (e.openable) {
      const button = text("button", label, `queue-item ${e.verdict.toLowerCase()}`);
      button.type = "button";
      button.addEventListener("click", () => openShipment(e.shipment));
      li.append(button);
    } else li.append(text("span", `${label} (a presented bundle)`));
    list.append(li);
  }
}

// ----------------------------------------------------------------- barcode input

async function decodeImage(file) {
  const bitmap = await createImageBitmap(file);
  if ("BarcodeDetector" in window) {
    try {
      const codes = await new window.BarcodeDetector().detect(bitmap);
      if (codes.length) return codes[0].rawValue;
    } catch {
      // fall through to the library
    }
  }
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const code = jsQR(image.data, image.width, image.height);
  return code ? code.data : null;
}

async function scanned(value, how) {
  $("query").value = value;
  $("scan-result").textContent = `${how}: ${value}`;
  await find(value);
}

let stream = null;
async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $("find-status").textContent = "This browser gives no access to a camera; scan an image instead.";
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  } catch (err) {
    $("find-status").textContent = `The camera could not be opened: ${err.message}`;
    return;
  }
  $("camera-view").hidden = false;
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const detector = "BarcodeDetector" in window ? new window.BarcodeDetector() : null;
  const tick = async () => {
    if (!stream) return;
    let value = null;
    if (detector) {
      const codes = await detector.detect(video).catch(() => []);
      if (codes.length) value = codes[0].rawValue;
    } else if (video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      ctx.drawImage(video, 0, 0);
      const code = jsQR(ctx.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height);
      value = code && code.data;
    }
    if (value) {
      stopCamera();
      await scanned(value, "Scanned");
    } else requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

function stopCamera() {
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("camera-view").hidden = true;
}

// ------------------------------------------------------------------------ wiring

function wire() {
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("api-key").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("find-form").addEventListener("submit", (e) => {
    e.preventDefault();
    find($("query").value.trim());
  });
  $("scan-image").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const value = await decodeImage(file).catch(() => null);
    e.target.value = "";
    if (!value) $("scan-result").textContent = `No barcode could be read in ${file.name}.`;
    else await scanned(value, `Read from ${file.name}`);
  });
  $("bundle-file").addEventListener("change", (e) => {
    if (e.target.files[0]) openBundle(e.target.files[0]);
    e.target.value = "";
  });
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) openBundle(file);
  });
  $("camera").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  $("finding-form").addEventListener("submit", recordFinding);
  $("queue-refresh").addEventListener("click", refreshQueue);
  for (const box of document.querySelectorAll("input[name=queue-verdict]")) box.addEventListener("change", refreshQueue);
  $("chain-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem("console-chain", JSON.stringify({ rpcUrl: $("rpc-url").value, ledger: $("ledger-address").value, chainId: Number($("chain-id").value) }));
    showChain();
  });
  $("chain-reset").addEventListener("click", () => {
    localStorage.removeItem("console-chain");
    showChain();
  });
  if (state.token) signIn(state.token);
}

wire();
