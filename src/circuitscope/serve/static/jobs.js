/* The jobs view: background work (attribution graphs, feature statistics, steering sweeps) with a progress bar
 * each, polled while any is queued or running, a cancel button while it is, "Open" for a finished graph and
 * "Show" for the other kinds' results. */

import { act, del, getJSON, postJSON } from './api.js';
import { byId, clear, el } from './dom.js';
import { openFeature } from './features.js';
import { openGraph } from './graphs.js';
import { state } from './state.js';

const ACTIVE = new Set(['queued', 'running']);
let timer = null;

export async function startGraph(button) {
  const body = { kind: 'graph', prompt: state.prompt, max_feature_nodes: Number(byId('jb-nodes').value) };
  const started = await act(button, () => postJSON('/api/jobs', body));
  if (started) await refresh();
  return started;
}

export async function startStats(button, source) {
  const started = await act(button, () => postJSON('/api/jobs', { kind: 'feature_stats', source }));
  if (started) await refresh();
  return started;
}

function listed(id, parse) {
  return byId(id).value.split(',').map((v) => v.trim()).filter((v) => v !== '').map(parse);
}

export async function startSweep(button) {
  const layers = listed('sw-layers', Number);
  const body = {
    kind: 'steering_sweep',
    positive: byId('st-pos').value,
    negative: byId('st-neg').value,
    prompt: byId('st-prompt').value || state.prompt,
    targets: byId('sw-targets').value.split(',').filter((t) => t.trim() !== ''),
    layers: layers.length ? layers : [...Array(state.info.n_layers).keys()],
    coefficients: listed('sw-coefs', Number),
  };
  const started = await act(button, () => postJSON('/api/jobs', body));
  if (started) await refresh();
  return started;
}

function showSweep(sweep) {
  const cell = (v) => el('td', { class: 'num' }, v === null ? '' : v.toFixed(3));
  const grid = (title, rows) => el('table', { class: 'jobs', dataset: { sweep: title } },
    el('caption', {}, title),
    el('thead', {}, el('tr', {}, [el('th', { scope: 'col' }, 'layer'), ...sweep.coefficients.map((c) => el('th', { scope: 'col' }, `x${c}`))])),
    el('tbody', {}, rows.map((row, i) => el('tr', {}, el('th', { scope: 'row' }, `L${sweep.layers[i]}`), ...row.map(cell)))));
  clear(
    byId('jb-result'),
    el('h2', {}, `Steering sweep: ${sweep.effect_name}`),
    el('p', {}, `Without steering: ${sweep.baseline_effect.toFixed(3)}; damage is the loss change on ${sweep.neutral_texts} neutral text(s).`),
    grid('effect', sweep.scores),
    grid('damage', sweep.damage),
  );
}

function showStats(stats) {
  const pct = (x) => `${(100 * x).toFixed(2)}%`;
  const open = (f) => (ev) => { byId('tab-features').click(); return openFeature(f, ev.currentTarget); };
  clear(
    byId('jb-result'),
    el('h2', {}, `Feature statistics of ${stats.source}`),
    el('p', {}, `${stats.n_tokens} tokens: ${pct(stats.dead_fraction)} of the features never fired (dead over this window), ${pct(stats.dense_fraction)} fired on more than 10% of the tokens.`),
    el('table', { class: 'jobs', dataset: { stats: stats.source } },
      el('thead', {}, el('tr', {}, ['feature', 'fires on', ''].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, stats.most_frequent.map((f) => el('tr', {}, el('td', {}, `#${f.feature}`), el('td', {}, pct(f.frequency)), el('td', {}, el('button', { type: 'button', onclick: open(f.feature) }, 'Open')))))),
  );
}

async function openResult(job, button, show) {
  const result = await act(button, () => getJSON(`/api/jobs/${job.id}/result`));
  if (result) show(result);
}

function openStats(job, button) {
  return openResult(job, button, showStats);
}

function listOf(answer) {
  return Array.isArray(answer) ? answer : answer.jobs;
}

export async function refresh() {
  const jobs = await act(null, async () => listOf(await getJSON('/api/jobs')), true);
  if (!jobs) return;
  draw(jobs);
  clearTimeout(timer);
  timer = jobs.some((j) => ACTIVE.has(j.state)) ? setTimeout(refresh, 500) : null;
}

function progress(job) {
  const p = job.progress;
  if (!p) return el('span', { class: 'caption' }, job.state === 'queued' ? 'waiting' : '');
  const total = Math.max(1, p.total);
  return el('span', { class: 'progress' }, el('progress', { max: String(total), value: String(p.done), 'aria-label': `${p.stage}: ${p.done} of ${p.total}` }), ` ${p.stage} ${p.done}/${p.total}`);
}

function actions(job) {
  if (ACTIVE.has(job.state)) {
    return el('button', { type: 'button', class: 'cancel', 'aria-label': `Cancel job ${job.id}`, onclick: (ev) => act(ev.currentTarget, () => del(`/api/jobs/${job.id}`)).then(refresh) }, 'Cancel');
  }
  if (job.state === 'done' && job.kind === 'feature_stats') {
    return el('button', { type: 'button', onclick: (ev) => openStats(job, ev.currentTarget) }, 'Show');
  }
  if (job.state === 'done' && job.kind === 'steering_sweep') {
    return el('button', { type: 'button', onclick: (ev) => openResult(job, ev.currentTarget, showSweep) }, 'Show');
  }
  if (job.state === 'done' && job.kind === 'graph') {
    return el('button', { type: 'button', onclick: (ev) => { byId('tab-graphs').click(); return openGraph('job', job.id, ev.currentTarget); } }, 'Open');
  }
  return null;
}

function draw(jobs) {
  const rows = jobs.map((j) =>
    el(
      'tr',
      { dataset: { job: j.id, state: j.state } },
      el('td', {}, el('code', {}, j.id)),
      el('td', {}, j.kind),
      el('td', { class: 'state' }, j.state),
      el('td', {}, progress(j)),
      el('td', { class: 'job-error' }, j.error || ''),
      el('td', {}, actions(j)),
    ),
  );
  clear(
    byId('jb-list'),
    rows.length
      ? el('table', { class: 'jobs' }, el('thead', {}, el('tr', {}, ['job', 'kind', 'state', 'progress', 'error', ''].map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows))
      : el('p', { class: 'caption' }, 'No jobs yet.'),
  );
}
