// The custody chain as an SVG graph: production, licences, hand-overs, splits and merges,
// the shipment — one column per step, arrows along the references. Records named by a
// finding are outlined in red and the references between them (the offending edges)
// drawn red and dashed; the same facts are listed as text for screen readers.
const NS = "http://www.w3.org/2000/svg";
const W = 168, H = 58, GX = 56, GY = 22;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function custodyGraph(bundle, flaggedSets, names) {
  const records = new Map();
  for (const a of bundle.attestations || []) records.set(a.uid.toLowerCase(), a);
  const refsOf = (uid) => ((records.get(uid).typedData.message.refs || []).map((r) => r.toLowerCase()).filter((r) => records.has(r)));
  const depth = new Map();
  const depthOf = (uid, seen = new Set()) => {
    if (depth.has(uid)) return depth.get(uid);
    if (seen.has(uid)) return 0;
    seen.add(uid);
    const d = Math.max(-1, ...refsOf(uid).map((r) => depthOf(r, seen))) + 1;
    depth.set(uid, d);
    return d;
  };
  for (const uid of records.keys()) depthOf(uid);
  const columns = [];
  for (const [uid, d] of depth) (columns[d] = columns[d] || []).push(uid);
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((uid, y) => pos.set(uid, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const width = 20 + columns.length * (W + GX) - GX;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  const flaggedNodes = new Set(flaggedSets.flat());
  const offending = (a, b) => flaggedSets.some((set) => set.includes(a) && set.includes(b));

  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": "graph-title" });
  svg.append(el("title", { id: "graph-title" }, "Custody chain of the shipment"));
  const defs = el("defs");
  for (const [id, color] of [["arrow", "#4a5568"], ["arrow-bad", "#b00020"]]) {
    const marker = el("marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }));
    defs.append(marker);
  }
  svg.append(defs);
  const lines = [];
  for (const uid of records.keys()) {
    for (const ref of refsOf(uid)) {
      const a = pos.get(ref), b = pos.get(uid);
      const bad = offending(ref, uid);
      svg.append(el("path", {
        d: `M ${a.x + W} ${a.y + H / 2} C ${a.x + W + GX / 2} ${a.y + H / 2}, ${b.x - GX / 2} ${b.y + H / 2}, ${b.x} ${b.y + H / 2}`,
        class: bad ? "edge edge-bad" : "edge", "marker-end": bad ? "url(#arrow-bad)" : "url(#arrow)",
        "data-from": ref, "data-to": uid,
      }));
      lines.push({ from: ref, to: uid, bad });
    }
  }
  for (const [uid, a] of records) {
    const p = pos.get(uid);
    const m = a.typedData.message;
    const fields = Object.fromEntries(Object.entries((a.payload && a.payload.fields) || {}).map(([k, v]) => [k, v.value]));
    const g = el("g", { class: flaggedNodes.has(uid) ? "node node-bad" : "node", transform: `translate(${p.x},${p.y})`, "data-uid": uid });
    g.append(el("rect", { width: W, height: H, rx: 8 }));
    g.append(el("text", { x: 10, y: 20, class: "node-kind" }, a.typedData.primaryType));
    const detail = fields.quantity !== undefined ? `${fields.quantity} ${fields.unit || ""}${fields.destination ? " → " + fields.destination : ""}` : (fields.territories ? fields.territories.join(" ") : (fields.finding || fields.title || fields.note || ""));
    g.append(el("text", { x: 10, y: 36, class: "node-detail" }, String(detail).slice(0, 26)));
    g.append(el("text", { x: 10, y: 51, class: "node-who" }, (names(m.attester) || m.attester).slice(0, 28)));
    svg.append(g);
  }
  const list = document.createElement("ol");
  list.className = "graph-text";
  for (const line of lines) {
    const li = document.createElement("li");
    const from = records.get(line.from).typedData.primaryType, to = records.get(line.to).typedData.primaryType;
    li.textContent = `${from} ${line.from.slice(0, 10)}… → ${to} ${line.to.slice(0, 10)}…${line.bad ? " — offending link" : ""}`;
    if (line.bad) li.className = "bad";
    list.append(li);
  }
  return { svg, list, offendingEdges: lines.filter((l) => l.bad).length };
}
