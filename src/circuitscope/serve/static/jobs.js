/* The jobs view: background work (attribution graphs, feature statistics) with a progress bar each, polled
 * while any is queued or running, a cancel button while it is, and "Open" for a finished graph. */

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

async function openStats(job, button) {
  const stats = await act(button, () => getJSON(`/api/jobs/${job.id}/result`));
  if (stats) showStats(stats);
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
