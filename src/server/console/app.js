// spoke console - a small vanilla-JS page served by `spoke serve` at /.
// Chat (SSE streaming from /v1/chat/completions, Stop aborts the request so
// the server cancels the generation), models (/v1/models), live charts from
// /metrics (SVG), the task history and an SQL box (/v1/sql). Model output is
// only ever placed in the page as text nodes (textContent), never as HTML.
'use strict';

const state = {
  key: sessionStorage.getItem('spoke-key') || '',
  history: [],          // chat messages {role, content}
  abort: null,          // AbortController of the running reply
  metrics: [],          // samples {t, values}
  sql: null,            // true/false once known
  refreshMs: Number(new URLSearchParams(location.search).get('refresh') || 3000),
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function setStatus(text) { $('status').textContent = text; }

// ---- HTTP with the API key; a 401 asks for a key and retries
let keyWaiters = null;
function askKey(message) {
  if (!keyWaiters) {
    keyWaiters = [];
    $('key-error').textContent = message || '';
    $('key-input').value = '';
    $('key-dialog').showModal();
    $('key-input').focus();
  }
  return new Promise((resolve) => keyWaiters.push(resolve));
}
$('key-form').addEventListener('submit', () => {
  state.key = $('key-input').value.trim();
  sessionStorage.setItem('spoke-key', state.key);
  const w = keyWaiters || [];
  keyWaiters = null;
  w.forEach((r) => r());
});

async function api(path, opts = {}, retried = false) {
  const headers = Object.assign({}, opts.headers || {});
  if (state.key) headers['Authorization'] = 'Bearer ' + state.key;
  if (opts.body && !headers['Content-Type']) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  if (r.status === 401 && !retried) {
    let msg = '';
    try { msg = (await r.json()).error.message; } catch (e) { /* keep empty */ }
    await askKey(state.key ? 'The key was refused: ' + msg : '');
    return api(path, opts, true);
  }
  return r;
}

async function errorText(r) {
  try {
    const j = await r.json();
    return (j.error && (j.error.message || j.error)) || r.statusText;
  } catch (e) {
    return r.status + ' ' + r.statusText;
  }
}

// ---- tabs (arrow keys move between them)
const tabs = ['chat', 'models', 'metrics', 'history'];
function showTab(name, focus) {
  for (const t of tabs) {
    const on = t === name;
    $('tab-' + t).setAttribute('aria-selected', on ? 'true' : 'false');
    $('tab-' + t).tabIndex = on ? 0 : -1;
    $('view-' + t).hidden = !on;
  }
  if (focus) $('tab-' + name).focus();
  if (name === 'models') loadModels();
  if (name === 'history') loadHistory();
  if (name === 'metrics') renderCharts();
}
tabs.forEach((t, i) => {
  $('tab-' + t).addEventListener('click', () => showTab(t));
  $('tab-' + t).addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowRight') showTab(tabs[(i + 1) % tabs.length], true);
    if (ev.key === 'ArrowLeft') showTab(tabs[(i + tabs.length - 1) % tabs.length], true);
  });
});

// ---- safe markdown: text nodes only (code blocks, inline code, bold, italic, headings, lists)
function inline(text, parent) {
  const re = /(`[^`\n]+`|\*\*[^*\n]+\*\*|\*[^*\n]+\*)/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    const t = m[0];
    if (t[0] === '`') parent.append(el('code', {}, t.slice(1, -1)));
    else if (t.startsWith('**')) parent.append(el('strong', {}, t.slice(2, -2)));
    else parent.append(el('em', {}, t.slice(1, -1)));
    last = m.index + t.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function renderMarkdown(src) {
  const root = el('div', { class: 'md' });
  const lines = src.split('\n');
  let para = null, list = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^```\s*([\w+-]*)\s*$/);
    if (fence) {
      const code = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) code.push(lines[i]);
      const c = el('code', fence[1] ? { 'data-lang': fence[1] } : {}, code.join('\n'));
      root.append(el('pre', {}, c));
      para = list = null;
      continue;
    }
    const h = line.match(/^(#{1,4})\s+(.*)$/);
    const li = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)$/);
    if (h) {
      const e = el('h' + (h[1].length + 2), {});
      inline(h[2], e);
      root.append(e);
      para = list = null;
    } else if (li) {
      if (!list) { list = el('ul', {}); root.append(list); }
      const e = el('li', {});
      inline(li[1], e);
      list.append(e);
      para = null;
    } else if (line.trim() === '') {
      para = list = null;
    } else {
      if (!para) { para = el('p', {}); root.append(para); } else para.append(el('br', {}));
      inline(line, para);
      list = null;
    }
  }
  return root;
}
window.spokeRenderMarkdown = renderMarkdown; // for the tests

// ---- chat
function addMessage(role, text) {
  const body = el('div', { class: 'body' });
  const meta = el('div', { class: 'meta' });
  const m = el('article', { class: 'msg ' + role, 'aria-label': role }, el('div', { class: 'role' }, role), body, meta);
  if (text) body.append(renderMarkdown(text));
  $('messages').append(m);
  m.scrollIntoView({ block: 'end' });
  return { m, body, meta };
}

async function loadModelPicker() {
  const r = await api('/v1/models');
  if (!r.ok) { setStatus('models: ' + await errorText(r)); return; }
  const j = await r.json();
  const sel = $('model-select');
  const cur = sel.value;
  sel.textContent = '';
  for (const m of j.data) sel.append(el('option', { value: m.id }, m.id + (m.status !== 'ready' ? ' (' + m.status + ')' : '')));
  if (cur) sel.value = cur;
  setStatus(j.data.length + ' model(s)');
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('stop').disabled = !busy;
}

async function send(text) {
  const system = $('system-prompt').value.trim();
  state.history.push({ role: 'user', content: text });
  addMessage('user', text);
  const reply = addMessage('assistant', '');
  reply.m.setAttribute('aria-busy', 'true');
  const msgs = (system ? [{ role: 'system', content: system }] : []).concat(state.history);
  const req = {
    model: $('model-select').value, messages: msgs, stream: true, stream_options: { include_usage: true },
    temperature: Number($('temperature').value), top_p: Number($('top-p').value),
    max_tokens: Number($('max-tokens').value),
  };
  if ($('seed').value !== '') req.seed = Number($('seed').value);
  const ctl = new AbortController();
  state.abort = ctl;
  setBusy(true);
  const t0 = performance.now();
  let tFirst = 0, out = '', usage = null, chunks = 0, stopped = false, failed = '';
  try {
    const r = await api('/v1/chat/completions', { method: 'POST', body: JSON.stringify(req), signal: ctl.signal });
    if (!r.ok) throw new Error(await errorText(r));
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!ev.startsWith('data: ')) continue;
        const data = ev.slice(6);
        if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        if (j.usage) usage = j.usage;
        const delta = j.choices && j.choices[0] && j.choices[0].delta;
        if (delta && delta.content) {
          if (!tFirst) tFirst = performance.now();
          chunks++;
          out += delta.content;
          reply.body.textContent = '';
          reply.body.append(renderMarkdown(out));
        }
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') stopped = true;
    else failed = String(e.message || e);
  }
  const tEnd = performance.now();
  state.abort = null;
  setBusy(false);
  reply.m.setAttribute('aria-busy', 'false');
  state.history.push({ role: 'assistant', content: out });
  const n = usage ? usage.completion_tokens : chunks;
  const parts = [];
  if (tFirst) parts.push('TTFT ' + Math.round(tFirst - t0) + ' ms');
  if (tFirst && n > 1 && tEnd > tFirst) parts.push(((n - 1) * 1000 / (tEnd - tFirst)).toFixed(1) + ' tok/s');
  parts.push(n + ' tokens');
  if (stopped) parts.push('stopped');
  reply.meta.textContent = parts.join(' · ');
  if (stopped) reply.m.classList.add('stopped');
  if (failed) {
    reply.m.classList.add('failed');
    reply.meta.textContent = 'error: ' + failed;
  }
  $('chat-input').focus();
}

$('chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('chat-input').value;
  if (!text.trim() || state.abort) return;
  $('chat-input').value = '';
  send(text);
});
$('chat-input').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) {
    ev.preventDefault();
    $('chat-form').requestSubmit();
  }
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && state.abort) state.abort.abort();
});
$('stop').addEventListener('click', () => { if (state.abort) state.abort.abort(); });
$('clear-chat').addEventListener('click', () => {
  state.history = [];
  $('messages').textContent = '';
  $('chat-input').focus();
});

// ---- models
function bytes(n) {
  if (!n && n !== 0) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + u[i];
}

async function loadModels() {
  const r = await api('/v1/models');
  const tb = $('models-table').tBodies[0];
  if (!r.ok) { setStatus('models: ' + await errorText(r)); return; }
  const j = await r.json();
  tb.textContent = '';
  for (const m of j.data) {
    const status = m.status + (m.error ? ': ' + m.error : '');
    tb.append(el('tr', { 'data-model': m.id },
      el('th', { scope: 'row' }, m.id), el('td', { class: 'status-' + m.status }, status), el('td', {}, m.backend || ''),
      el('td', {}, m.arch || ''), el('td', {}, m.quantization || ''),
      el('td', {}, m.parameters ? m.parameters.toLocaleString() : ''), el('td', {}, m.context_length || ''),
      el('td', {}, bytes(m.footprint_bytes)), el('td', {}, m.max_concurrency || ''),
      el('td', {}, m.in_flight === undefined ? '' : m.in_flight), el('td', {}, m.queued === undefined ? '' : m.queued)));
  }
}

// ---- metrics: Prometheus text -> samples -> SVG charts
function parseProm(text) {
  const v = {};
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const p of m[2].slice(1, -1).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    (v[m[1]] = v[m[1]] || []).push({ labels, value: Number(m[3]) });
  }
  return v;
}
const sum = (v, name) => (v[name] || []).reduce((a, s) => a + s.value, 0);

// quantile from the delta of cumulative histogram buckets between two samples
// (bucket bounds compared as numbers: "0.025000000000000001" is 0.025)
function quantile(prev, cur, name, q) {
  const le = new Map();
  const add = (v, sign) => {
    for (const s of (v && v[name + '_bucket']) || []) {
      const b = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      le.set(b, (le.get(b) || 0) + sign * s.value);
    }
  };
  add(cur, 1);
  add(prev, -1);
  const bounds = [...le.keys()].sort((a, b) => a - b);
  const total = le.get(Infinity) || 0;
  if (total <= 0) return null;
  const finite = bounds.filter((b) => b !== Infinity);
  for (const b of finite) if (le.get(b) >= q * total) return b;
  return finite.length ? finite[finite.length - 1] : null;
}

const charts = [
  { id: 'req', title: 'Requests / s', fn: (p, c, dt) => p ? (sum(c, 'llm_requests_total') - sum(p, 'llm_requests_total')) / dt : null },
  { id: 'tps', title: 'Generated tokens / s', fn: (p, c, dt) => p ? (sum(c, 'llm_completion_tokens_total') - sum(p, 'llm_completion_tokens_total')) / dt : null },
  { id: 'ttft', title: 'Time to first token p50 / p95 (s)', fn: (p, c) => quantile(p, c, 'llm_time_to_first_token_seconds', 0.5), fn2: (p, c) => quantile(p, c, 'llm_time_to_first_token_seconds', 0.95) },
  { id: 'itl', title: 'Inter-token latency p50 / p95 (s)', fn: (p, c) => quantile(p, c, 'llm_inter_token_latency_seconds', 0.5), fn2: (p, c) => quantile(p, c, 'llm_inter_token_latency_seconds', 0.95) },
  { id: 'queue', title: 'Queue depth / in flight', fn: (p, c) => sum(c, 'llm_queue_depth'), fn2: (p, c) => sum(c, 'llm_in_flight') },
  { id: 'mem', title: 'Memory in use (MiB)', fn: (p, c) => sum(c, 'spoke_memory_in_use_bytes') / 1048576 },
];

async function pollMetrics() {
  try {
    const r = await api('/metrics');
    if (r.ok) {
      const cur = parseProm(await r.text());
      const t = Date.now();
      const prev = state.metrics.length ? state.metrics[state.metrics.length - 1] : null;
      const dt = prev ? (t - prev.t) / 1000 : 0;
      const point = { t, raw: cur };
      for (const ch of charts) {
        point[ch.id] = ch.fn(prev && prev.raw, cur, dt);
        if (ch.fn2) point[ch.id + '2'] = ch.fn2(prev && prev.raw, cur, dt);
      }
      state.metrics.push(point);
      while (state.metrics.length > 100 || (state.metrics.length && t - state.metrics[0].t > 300000)) state.metrics.shift();
      if (!$('view-metrics').hidden) renderCharts();
    }
  } catch (e) { /* the next poll retries */ }
  setTimeout(pollMetrics, state.refreshMs);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function renderCharts() {
  const box = $('charts');
  box.textContent = '';
  const pts = state.metrics;
  for (const ch of charts) {
    const W = 320, H = 120, P = 4;
    const series = [ch.id, ch.id + '2'].filter((k) => ch[k === ch.id ? 'fn' : 'fn2']);
    const vals = [];
    for (const k of series) for (const p of pts) if (p[k] !== null && p[k] !== undefined && isFinite(p[k])) vals.push(p[k]);
    const max = Math.max(1e-9, ...vals);
    const t0 = pts.length ? pts[0].t : 0, t1 = pts.length ? pts[pts.length - 1].t : 1;
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', class: 'chart', 'data-chart': ch.id,
      'aria-label': ch.title });
    s.append(svg('rect', { x: 0, y: 0, width: W, height: H, class: 'bg' }));
    series.forEach((k, i) => {
      const xy = pts.filter((p) => p[k] !== null && p[k] !== undefined && isFinite(p[k]))
        .map((p) => [P + (W - 2 * P) * (t1 > t0 ? (p.t - t0) / (t1 - t0) : 1), H - P - (H - 2 * P) * p[k] / max]);
      if (!xy.length) return;
      const d = xy.map((q, j) => (j ? 'L' : 'M') + q[0].toFixed(1) + ' ' + q[1].toFixed(1)).join(' ');
      s.append(svg('path', { d, class: 'line s' + i, 'data-points': xy.length }));
    });
    const last = vals.length ? vals[vals.length - 1] : null;
    if (last !== null) s.setAttribute('data-last', last);
    const fig = el('figure', { class: 'chart-box' }, el('figcaption', {}, ch.title + ' — now ' +
      (last === null ? 'n/a' : Number(last.toPrecision(3))) + ', max ' + Number(max.toPrecision(3))));
    fig.append(s);
    box.append(fig);
  }
}

// ---- task history and SQL
async function sql(query) {
  const r = await api('/v1/sql', { method: 'POST', body: JSON.stringify({ sql: query }) });
  if (r.status === 404 || r.status === 403) { state.sql = false; throw new Error(await errorText(r)); }
  if (!r.ok) throw new Error(await errorText(r));
  state.sql = true;
  return r.json();
}

const quote = (s) => "'" + String(s).replace(/'/g, "''") + "'";

async function loadHistory() {
  const where = [];
  const task = $('filter-task').value, model = $('filter-model').value.trim(), status = $('filter-status').value;
  if (task) where.push('task = ' + quote(task));
  if (model) where.push("json_extract(labels, '$.model') = " + quote(model));
  if (status === 'ok') where.push('error_message IS NULL');
  if (status === 'error') where.push('error_message IS NOT NULL');
  const q = 'SELECT span_id, start_time, task, json_extract(labels, \'$.model\') AS model, execution_duration_ms, ' +
    "json_extract(labels, '$.total_tokens') AS tokens, error_message FROM task_history" +
    (where.length ? ' WHERE ' + where.join(' AND ') : '') + ' ORDER BY start_time DESC LIMIT 50';
  let j;
  try {
    j = await sql(q);
  } catch (e) {
    $('history-off').hidden = state.sql !== false;
    $('history-on').hidden = state.sql === false;
    setStatus('history: ' + e.message);
    return;
  }
  $('history-off').hidden = true;
  $('history-on').hidden = false;
  const tb = $('history-table').tBodies[0];
  tb.textContent = '';
  for (const row of j.rows) {
    const btn = el('button', { type: 'button', class: 'link' }, row.start_time);
    btn.addEventListener('click', () => showSpan(row.span_id));
    tb.append(el('tr', {}, el('td', {}, btn), el('td', {}, row.task), el('td', {}, row.model || ''),
      el('td', {}, row.execution_duration_ms === null ? '' : Number(row.execution_duration_ms).toFixed(1)),
      el('td', {}, row.tokens === null ? '' : row.tokens), el('td', {}, row.error_message ? 'error: ' + row.error_message : 'ok')));
  }
}

async function showSpan(id) {
  const box = $('history-detail');
  box.textContent = '';
  try {
    const j = await sql('SELECT * FROM task_history WHERE span_id = ' + quote(id));
    const row = j.rows[0] || {};
    const dl = el('dl', { class: 'detail' });
    for (const k of j.columns) dl.append(el('dt', {}, k), el('dd', {}, el('pre', {}, row[k] === null ? '' : String(row[k]))));
    box.append(el('h2', {}, 'Span ' + id), dl);
  } catch (e) {
    box.append(el('p', { class: 'error' }, e.message));
  }
}

function resultTable(j) {
  const t = el('table', { class: 'sql-result' });
  t.append(el('caption', {}, j.rows.length + ' row(s)' + (j.truncated ? ' (truncated)' : '')));
  const hr = el('tr', {});
  for (const c of j.columns) hr.append(el('th', { scope: 'col' }, c));
  t.append(el('thead', {}, hr));
  const tb = el('tbody', {});
  for (const row of j.rows) {
    const tr = el('tr', {});
    for (const c of j.columns) tr.append(el('td', {}, row[c] === null ? 'NULL' : String(row[c])));
    tb.append(tr);
  }
  t.append(tb);
  return t;
}

$('history-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadHistory(); });
$('sql-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('sql-error').textContent = '';
  $('sql-result').textContent = '';
  try {
    $('sql-result').append(resultTable(await sql($('sql-input').value)));
  } catch (e) {
    $('sql-error').textContent = e.message;
  }
});

// ---- start
loadModelPicker().then(() => setInterval(() => { if (!$('view-models').hidden) loadModels(); }, state.refreshMs));
pollMetrics();
