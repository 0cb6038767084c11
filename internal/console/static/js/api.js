// The console's calls: the native API (Connect protocol, JSON) and the
// console's own endpoints, with the credentials of the login form.

const credentialKey = 'weir.console.authorization';

// Unauthorized is thrown by every call the server refused for missing or
// wrong credentials; the app then shows the login form.
export class Unauthorized extends Error {}

export class APIError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export function authorization() { return sessionStorage.getItem(credentialKey) || ''; }

export function setCredentials({ user, password, token }) {
  let value = '';
  if (token) value = 'Bearer ' + token.trim();
  else if (user) value = 'Basic ' + base64(utf8(user + ':' + password));
  if (value) sessionStorage.setItem(credentialKey, value);
  else sessionStorage.removeItem(credentialKey);
}

export function clearCredentials() { sessionStorage.removeItem(credentialKey); }

function headers(extra) {
  const h = { 'X-Requested-With': 'weir-console', ...extra };
  const a = authorization();
  if (a) h.Authorization = a;
  return h;
}

// call invokes a unary method of weir.v1.Weir (or another service given
// as "weir.v1.Connectors/ListConnectors") with a JSON body.
export async function call(method, body = {}) {
  const path = method.includes('/') ? method : 'weir.v1.Weir/' + method;
  const sent = authorization();
  const resp = await fetch('/' + path, {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1' }),
    body: JSON.stringify(body),
  });
  return answer(resp, path, sent);
}

// get reads one of the console's own endpoints.
export async function get(path, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null));
  const sent = authorization();
  const resp = await fetch(path + (q.size ? '?' + q : ''), { headers: headers() });
  return answer(resp, path, sent);
}

// refused handles a 401: the login form, unless the request was sent with
// credentials that have been replaced since (a late answer to an earlier
// attempt).
function refused(sent) {
  if (sent === authorization()) onUnauthorized();
}

async function answer(resp, what, sent) {
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (resp.status === 401) {
    refused(sent);
    throw new Unauthorized(data.message || data.error || 'authentication required');
  }
  if (!resp.ok) throw new APIError(`${what}: ${data.message || data.error || resp.statusText}`, data.code || resp.status);
  return data;
}

// live opens the server-sent events of /console/api/live with fetch (an
// EventSource cannot send the Authorization header) and calls onEvent(name,
// data) for each event until stop() is called; it reconnects after errors.
export function live(onEvent, onState) {
  let controller = null;
  let stopped = false;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      const sent = authorization();
      try {
        const resp = await fetch('/console/api/live', { headers: headers({ Accept: 'text/event-stream' }), signal: controller.signal });
        if (resp.status === 401) { onState(false); refused(sent); return; }
        if (!resp.ok || !resp.body) throw new Error('live feed: ' + resp.status);
        onState(true);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = 'message';
            const data = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) event = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
            }
            if (data.length) onEvent(event, JSON.parse(data.join('\n')));
          }
        }
      } catch (err) {
        if (stopped) { onState(false); return; }
      }
      onState(false);
      if (!stopped) await new Promise((r) => setTimeout(r, 2000));
    }
  }
  run();
  return () => { stopped = true; if (controller) controller.abort(); };
}

// Bytes: the API's JSON carries them in base64.
export function utf8(s) { return new TextEncoder().encode(s); }
export function base64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
export function unbase64(s) {
  if (s == null) return null;
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
