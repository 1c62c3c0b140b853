"""The dashboard's two pages: plain HTML and a little JavaScript over the JSON API (no build step,
nothing fetched from the internet; plotly.js comes from ``/static``)."""

_STYLE = """
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; font-size: 90%; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th.sortable { cursor: pointer; text-decoration: underline dotted; }
tr.trial { cursor: pointer; } tr.trial:hover { background: #f3f6fa; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.fig { min-height: 420px; border: 1px solid #eee; } .msg { color: #666; padding: 2em; }
#detail { border: 1px solid #ccc; padding: 0.5em 1em; margin-top: 1em; display: none; }
pre { background: #f6f6f6; padding: 0.5em; max-height: 20em; overflow: auto; white-space: pre-wrap; }
.muted { color: #666; } .idle { background: #fde2e2; color: #a00; padding: 0 4px; border-radius: 3px; } .toggle { margin: 0 0 4px 0; font-size: 90%; }
</style>
"""

INDEX_HTML = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>thrifty dashboard</title>
""" + _STYLE + """</head><body>
<h1>thrifty dashboard</h1><p class="muted">storage: {{storage}} (read-only)</p>
<table id="studies"><thead><tr><th>study</th><th>objectives</th><th class="num">trials</th>
<th class="num">completed</th><th class="num">running</th><th class="num">spent $</th><th class="num">budget left $</th>
</tr></thead><tbody></tbody></table>
<script>
function esc(s) { return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c])); }
async function load() {
  const rows = await (await fetch('/api/studies')).json();
  document.querySelector('#studies tbody').innerHTML = rows.map(s => {
    const left = s.budget.usd === null ? '-' : s.budget.usd_left.toFixed(4);
    const obj = Object.entries(s.objectives).map(([k, v]) => k + ' (' + v + ')').join(', ');
    return '<tr class="study" data-name="' + esc(s.name) + '"><td><a href="/study/' + encodeURIComponent(s.name) + '">'
      + esc(s.name) + '</a></td><td>' + esc(obj) + '</td><td class="num">' + s.trials + '</td><td class="num">'
      + (s.counts.completed || 0) + '</td><td class="num">' + (s.counts.running || 0) + '</td><td class="num">'
      + s.spent_usd.toFixed(4) + '</td><td class="num">' + left + '</td></tr>';
  }).join('') || '<tr><td colspan="7" class="muted">no studies yet</td></tr>';
  document.body.dataset.loaded = '1';
}
load(); setInterval(load, 5000);
</script></body></html>
"""

STUDY_HTML = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>thrifty: {{name}}</title>
""" + _STYLE + """</head><body>
<p><a href="/">all studies</a></p><h1>Study {{name}}</h1><p id="summary" class="muted"></p>
<div class="grid" id="figures"></div>
<h2>Trials</h2><p><button id="prev">previous</button> <span id="page"></span> <button id="next">next</button></p>
<table id="trials"><thead></thead><tbody></tbody></table>
<div id="detail"></div>
<script>
const NAME = {{name_json}}, API = '/api/studies/' + encodeURIComponent(NAME), POLL_MS = {{poll_ms}};
// plotly.js (about 4.6 MB) loads while the summary and the table are fetched and drawn: the page
// paints at once, the pictures follow.
const plotlyReady = new Promise(done => {
  const tag = document.createElement('script'); tag.src = '/static/plotly.min.js'; tag.onload = done;
  document.head.appendChild(tag);
});
const state = { offset: 0, limit: 50, sort: 'number', desc: true, version: null, objectives: {}, against: 'usd' };
function esc(s) { return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c])); }
function fmt(v) { return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(6)) : (v === null || v === undefined ? '-' : esc(v)); }
async function getJSON(url) { const r = await fetch(url); if (!r.ok) throw new Error(await r.text()); return r.json(); }
async function drawFigure(kind) {
  const div = document.getElementById('fig-' + kind);
  const answer = await getJSON(API + '/figures/' + kind + (kind === 'best_vs_cost' ? '?against=' + state.against : ''));
  await plotlyReady;
  if (answer.figure) {
    Plotly.react(div, answer.figure.data, answer.figure.layout, {displaylogo: false, responsive: true});
    div.dataset.drawn = String(Number(div.dataset.drawn || 0) + 1);
  } else { div.innerHTML = '<p class="msg">' + esc(kind) + ': ' + esc(answer.message) + '</p>'; }
}
async function drawFigures(kinds) {
  const box = document.getElementById('figures');
  for (const kind of kinds) {
    if (!document.getElementById('fig-' + kind)) {
      const div = document.createElement('div'); div.id = 'fig-' + kind; div.className = 'fig';
      div.innerHTML = '<p class="msg">loading ' + esc(kind) + ' ...</p>';
      if (kind === 'best_vs_cost') {  // x axis: dollars spent or trials finished
        const wrap = document.createElement('div');
        wrap.innerHTML = '<p class="toggle">x axis: <button id="against-usd" disabled>dollars spent</button> '
          + '<button id="against-trials">trials finished</button></p>';
        wrap.appendChild(div); box.appendChild(wrap);
        for (const key of ['usd', 'trials']) document.getElementById('against-' + key).onclick = () => {
          state.against = key;
          document.getElementById('against-usd').disabled = key === 'usd';
          document.getElementById('against-trials').disabled = key === 'trials';
          drawFigure('best_vs_cost');
        };
      } else { box.appendChild(div); }
    }
  }
  // The first picture (best value against dollars) first, then the others side by side.
  await drawFigure(kinds[0]);
  await Promise.all(kinds.slice(1).map(drawFigure));
}
async function drawTable() {
  const q = new URLSearchParams({offset: state.offset, limit: state.limit, sort: state.sort, desc: state.desc});
  const asked = state.tableAsks = (state.tableAsks || 0) + 1;
  const page = await getJSON(API + '/trials?' + q);
  if (asked !== state.tableAsks) return;  // a later click (sort, page) asked again: its answer is the one to show
  const objs = Object.keys(page.objectives);
  const cols = [['number', 'trial'], ['state', 'state']].concat(objs.map((o, i) => [i === 0 ? 'value' : null, o]))
    .concat([['cost_usd', 'cost $'], ['elapsed_s', 'seconds'], [null, 'note']]);
  document.querySelector('#trials thead').innerHTML = '<tr>' + cols.map(([key, label]) => key
    ? '<th class="sortable" data-sort="' + key + '">' + esc(label) + (state.sort === key ? (state.desc ? ' ▼' : ' ▲') : '') + '</th>'
    : '<th>' + esc(label) + '</th>').join('') + '</tr>';
  document.querySelectorAll('#trials th.sortable').forEach(th => th.onclick = () => {
    state.desc = state.sort === th.dataset.sort ? !state.desc : false; state.sort = th.dataset.sort; state.offset = 0; drawTable(); });
  document.querySelector('#trials tbody').innerHTML = page.trials.map(t => '<tr class="trial" data-number="' + t.number + '">'
    + '<td class="num">' + t.number + '</td><td>' + esc(t.state) + '</td>'
    + objs.map(o => '<td class="num">' + fmt(t.values[o]) + '</td>').join('')
    + '<td class="num">' + t.cost_usd.toFixed(4) + '</td><td class="num">' + t.elapsed_s.toFixed(1) + '</td><td>'
    + (t.gpu_idle ? '<span class="idle" title="its GPU sat idle most of the time">GPU idle</span> ' : '')
    + esc(t.note || '') + '</td></tr>').join('');
  document.querySelectorAll('#trials tr.trial').forEach(tr => tr.onclick = () => showTrial(tr.dataset.number));
  const last = Math.min(page.offset + page.limit, page.total);
  document.getElementById('page').textContent = (page.total ? page.offset + 1 : 0) + '-' + last + ' of ' + page.total;
  document.getElementById('prev').disabled = page.offset === 0;
  document.getElementById('next').disabled = last >= page.total;
  document.getElementById('trials').dataset.total = page.total;
}
document.getElementById('prev').onclick = () => { state.offset = Math.max(0, state.offset - state.limit); drawTable(); };
document.getElementById('next').onclick = () => { state.offset += state.limit; drawTable(); };
function usageLine(u) {  // the trial's resource use, as its runner sampled it
  if (!u) return '<p class="muted usage">resource use: not recorded</p>';
  let text = 'used: CPU ' + u.cpu_percent_mean.toFixed(0) + '% of a core on average (peak ' + u.cpu_percent_max.toFixed(0)
    + '%), memory up to ' + u.rss_mb_max.toFixed(0) + ' MB';
  if (u.gpus > 0) text += '; ' + u.gpus + ' GPU' + (u.gpus > 1 ? 's' : '') + ' ' + u.gpu_util_percent_mean.toFixed(0)
    + '% busy on average, memory up to ' + u.gpu_memory_mb_max.toFixed(0) + ' MB, idle ' + (100 * u.gpu_idle_share).toFixed(0) + '% of the time';
  return '<p class="usage">' + esc(text) + '</p>';
}
function stagesTable(stages) {  // a pipeline trial's stages: run, read from the memo cache (hit) or skipped
  if (!stages || !stages.length) return '';
  return '<table class="stages"><tr><th>stage</th><th>outcome</th><th class="num">cost $</th><th class="num">seconds</th>'
    + '<th class="num">saved $</th></tr>' + stages.map(r => '<tr><td>' + esc(r.name) + '</td><td>'
    + esc(r.outcome === 'hit' ? 'read from the cache' : r.outcome) + '</td><td class="num">' + r.cost_usd.toFixed(4)
    + '</td><td class="num">' + r.elapsed_s.toFixed(1) + '</td><td class="num">' + r.saved_usd.toFixed(4) + '</td></tr>').join('')
    + '</table>';
}
async function showTrial(number) {
  const t = await getJSON(API + '/trials/' + number);
  const box = document.getElementById('detail'); box.style.display = 'block';
  const params = Object.entries(t.params).map(([k, v]) => '<tr><th>' + esc(k) + '</th><td>' + fmt(v) + '</td></tr>').join('');
  const metrics = Object.entries(t.metrics).map(([k, v]) => '<tr><th>' + esc(k) + '</th><td>' + fmt(v) + '</td></tr>').join('');
  box.innerHTML = '<h3>Trial ' + t.number + ' (' + esc(t.state) + ')</h3><p>cost $' + t.cost_usd.toFixed(4) + ', '
    + t.elapsed_s.toFixed(1) + ' s' + (t.parent !== null ? ', continues trial ' + t.parent : '') + (t.reason ? '; ' + esc(t.reason) : '')
    + '</p>' + usageLine(t.usage) + stagesTable(t.stages) + '<table>' + params + metrics + '</table>' + (t.error_tail ? '<pre>' + esc(t.error_tail) + '</pre>' : '')
    + '<div id="curve" style="height:300px"></div>';
  const metric = Object.keys(state.objectives)[0];
  const pts = t.curve.filter(m => m.step !== null && typeof m.metrics[metric] === 'number');
  Plotly.newPlot('curve', [{x: pts.map(m => m.step), y: pts.map(m => m.metrics[metric]), mode: 'lines+markers', name: metric}],
    {title: {text: 'trial ' + t.number + ': ' + metric + ' by step'}, margin: {t: 40}}, {displaylogo: false});
}
async function refresh(force) {
  const summary = await getJSON(API + '/summary');
  state.objectives = summary.objectives;
  const v = JSON.stringify(summary.version);
  if (!force && v === state.version) return;
  state.version = v;
  const c = summary.version.counts, b = summary.budget;
  document.getElementById('summary').textContent = Object.entries(c).filter(([, n]) => n).map(([s, n]) => n + ' ' + s).join(', ')
    + '; spent $' + summary.version.spent_usd.toFixed(4) + (b.usd !== null ? ' of $' + b.usd.toFixed(2) + ' ($' + b.usd_left.toFixed(4) + ' left)' : '')
    + (summary.memo_cache ? '; memo cache: ' + summary.memo_cache.hits + ' hits, ' + summary.memo_cache.misses
       + ' misses, $' + summary.memo_cache.saved_usd.toFixed(4) + ' saved' : '');
  await Promise.all([drawTable(), drawFigures(summary.figures)]);
  document.body.dataset.version = v;
}
refresh(true).then(() => setInterval(() => refresh(false), POLL_MS));
</script></body></html>
"""
