// Small drawing code: line charts on a canvas and the exchange graph in SVG.

const palette = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280', '#2c7a7b', '#975a16', '#4a5568'];
export function color(i) { return palette[i % palette.length]; }

// lineChart draws series ([{name, points: [[t, y], ...]}]) on canvas, with
// the y axis labelled by format.
export function lineChart(canvas, series, format = String) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400;
  const height = canvas.clientHeight || 160;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const left = 64, right = 8, top = 8, bottom = 20;
  const all = series.flatMap((s) => s.points);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#718096';
  if (all.length < 2) {
    g.fillText('waiting for data…', left, top + 20);
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const yMax = niceCeiling(Math.max(...all.map((p) => p[1]), 0));
  const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 1)) * (width - left - right);
  const y = (v) => top + (1 - v / yMax) * (height - top - bottom);
  g.strokeStyle = '#e2e8f0';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    g.beginPath();
    g.moveTo(left, y(v));
    g.lineTo(width - right, y(v));
    g.stroke();
    g.fillText(format(v), 4, y(v) + 4);
  }
  const secs = Math.round((t1 - t0) / 1000);
  g.fillText(`last ${secs} s`, width - right - 60, height - 4);
  series.forEach((s, i) => {
    g.strokeStyle = s.color || color(i);
    g.lineWidth = 1.5;
    g.beginPath();
    s.points.forEach(([t, v], j) => (j ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
  });
}

function niceCeiling(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function legend(series) {
  const el = document.createElement('div');
  el.className = 'legend';
  series.forEach((s, i) => {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = s.color || color(i);
    item.append(swatch, s.name);
    el.append(item);
  });
  return el;
}

const svgNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

// exchangeGraph draws exchanges and the streams they route to as columns:
// an exchange bound to another sits left of it, streams on the right. Each
// binding is an arrow labelled with its key (or header arguments).
export function exchangeGraph(exchanges, queues) {
  const byName = new Map(exchanges.map((x) => [x.name, x]));
  const level = new Map();
  const depth = (name, seen = new Set()) => {
    if (level.has(name)) return level.get(name);
    if (seen.has(name)) return 0; // a cycle: place it anywhere
    seen.add(name);
    let d = 0;
    for (const x of exchanges) {
      for (const b of x.bindings || []) if (b.toExchange && b.destination === name) d = Math.max(d, depth(x.name, seen) + 1);
      if (x.alternateExchange === name) d = Math.max(d, depth(x.name, seen) + 1);
    }
    level.set(name, d);
    return d;
  };
  exchanges.forEach((x) => depth(x.name));
  const streams = [...new Set(exchanges.flatMap((x) => (x.bindings || []).filter((b) => !b.toExchange).map((b) => b.destination)))].sort();
  const columns = Math.max(0, ...level.values()) + 2;
  const rows = new Map();
  const place = new Map();
  for (const x of [...exchanges].sort((a, b) => a.name.localeCompare(b.name))) {
    const c = level.get(x.name);
    const r = rows.get(c) || 0;
    rows.set(c, r + 1);
    place.set('x:' + x.name, [c, r]);
  }
  streams.forEach((s, r) => place.set('s:' + s, [columns - 1, r]));
  rows.set(columns - 1, streams.length);
  const boxW = 170, boxH = 44, colGap = 170, rowGap = 26;
  const height = Math.max(1, ...rows.values()) * (boxH + rowGap) + 20;
  const width = columns * (boxW + colGap) - colGap + 40;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'graph', role: 'img', 'aria-label': 'exchanges and bindings' });
  const defs = svg('defs', {});
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#718096' }));
  defs.append(marker);
  root.append(defs);
  const pos = (key) => {
    const [c, r] = place.get(key);
    return [20 + c * (boxW + colGap), 10 + r * (boxH + rowGap)];
  };
  const edge = (from, to, label, dashed) => {
    if (!place.has(from) || !place.has(to)) return;
    const [x1, y1] = pos(from), [x2, y2] = pos(to);
    const sx = x1 + boxW, sy = y1 + boxH / 2, ex = x2, ey = y2 + boxH / 2;
    const mx = (sx + ex) / 2;
    const attrs = { d: `M ${sx} ${sy} C ${mx} ${sy}, ${mx} ${ey}, ${ex} ${ey}`, fill: 'none', stroke: '#718096', 'stroke-width': 1.4, 'marker-end': 'url(#arrow)' };
    if (dashed) attrs['stroke-dasharray'] = '5 4';
    root.append(svg('path', attrs));
    // The label sits just before the arrow's head, clear of the boxes the
    // curve may pass behind.
    if (label) root.append(svg('text', { x: ex - 8, y: ey - 6, 'text-anchor': 'end', class: 'edge-label' }, label));
  };
  for (const x of exchanges) {
    for (const b of x.bindings || []) {
      let label = b.key || '';
      if (b.args && Object.keys(b.args).length) label = Object.entries(b.args).map(([k, v]) => `${k}=${v}`).join(', ');
      edge('x:' + x.name, (b.toExchange ? 'x:' : 's:') + b.destination, label, false);
    }
    if (x.alternateExchange) edge('x:' + x.name, 'x:' + x.alternateExchange, 'alternate', true);
  }
  const queueNames = new Set(queues.map((q) => q.config.stream));
  for (const [key] of place) {
    const [x, y] = pos(key);
    const isExchange = key.startsWith('x:');
    const name = key.slice(2);
    const g = svg('g', { class: isExchange ? 'node exchange' : 'node stream', 'data-name': name });
    g.append(svg('rect', { x, y, width: boxW, height: boxH, rx: isExchange ? 6 : 18 }));
    g.append(svg('text', { x: x + boxW / 2, y: y + 18, 'text-anchor': 'middle', class: 'node-name' }, name.length > 24 ? name.slice(0, 23) + '…' : name));
    const kind = isExchange ? `${byName.get(name).type} exchange` : queueNames.has(name) ? 'queue' : 'stream';
    g.append(svg('text', { x: x + boxW / 2, y: y + 34, 'text-anchor': 'middle', class: 'node-kind' }, kind));
    root.append(g);
  }
  return root;
}
