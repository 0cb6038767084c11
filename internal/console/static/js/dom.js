// DOM helpers and formatting shared by the pages.

// h builds an element: h('td', {class: 'num'}, 'text', child, ...). Attributes
// starting with "on" are event listeners; strings become text nodes, never HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

// table builds a table of rows (arrays of cells); a cell is a value or a
// node. Numeric columns are those named in numeric.
export function table(headers, rows, { numeric = [], empty = 'nothing yet', id } = {}) {
  const head = h('tr', {}, headers.map((name) => h('th', { class: numeric.includes(name) ? 'num' : null }, name)));
  const body = rows.length
    ? rows.map((r) => h('tr', {}, r.map((cell, i) => h('td', { class: numeric.includes(headers[i]) ? 'num' : null }, cell))))
    : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, empty))];
  return h('table', { id }, h('thead', {}, head), h('tbody', {}, body));
}

export function num(v) { return Number(v ?? 0); }

export function fmtNum(v) {
  v = Number(v ?? 0);
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

export function fmtBytes(v) {
  v = Number(v ?? 0);
  if (v < 0) return 'unknown';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : Math.round(v)) + ' ' + units[i];
}

export function fmtSecs(v) {
  v = Number(v ?? 0);
  if (v === 0) return '0';
  if (v < 1e-3) return (v * 1e6).toFixed(0) + ' µs';
  if (v < 1) return (v * 1e3).toFixed(v < 0.01 ? 2 : 1) + ' ms';
  return v.toFixed(2) + ' s';
}

// fmtDuration formats a protobuf Duration in JSON ("3600s").
export function fmtDuration(d) {
  if (!d) return '';
  let s = parseFloat(d);
  const parts = [];
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (s >= n) { parts.push(Math.floor(s / n) + unit); s %= n; }
  }
  if (s || !parts.length) parts.push(+s.toFixed(3) + 's');
  return parts.join(' ');
}

export function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace('Z', '');
}

let toastTimer;
export function toast(message, error = false) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.className = error ? 'error' : '';
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, error ? 8000 : 4000);
}

// confirmAction asks in a dialog; resolves true when confirmed.
export function confirmAction(text, action = 'Confirm') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = action;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

// Record bytes shown as text, pretty JSON or hex.
const decoder = new TextDecoder('utf-8', { fatal: false });
export function asText(bytes) { return bytes == null ? null : decoder.decode(bytes); }
export function asHex(bytes) {
  if (bytes == null) return null;
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.slice(i, i + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(i.toString(16).padStart(8, '0') + '  ' + hex.padEnd(48) + ' ' + ascii);
  }
  return lines.join('\n');
}
export function asJSON(bytes) {
  if (bytes == null) return null;
  const text = asText(bytes);
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text + '\n(not JSON)'; }
}
