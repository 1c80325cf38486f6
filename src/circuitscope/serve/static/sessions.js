/* Save and reopen the user's open work through the sessions API: the prompts (the current one first, each
 * with its answer pair), the interventions and the graphs opened. */

import { act, getJSON, postJSON } from './api.js';
import { byId, clear, el } from './dom.js';
import { changed, state } from './state.js';

function work() {
  const current = { prompt: state.prompt, answer: state.answer, wrong: state.wrong };
  const others = state.prompts.filter((p) => p !== state.prompt).map((p) => ({ prompt: p, answer: '', wrong: '' }));
  return { prompts: [current, ...others], interventions: state.interventions, graphs: state.graphs };
}

export async function save(button) {
  const name = byId('ss-name').value.trim();
  const saved = await act(button, () => postJSON('/api/sessions', { name, work: work() }));
  if (!saved) return;
  byId('ss-msg').textContent = `saved as ${name}`;
  await list();
}

export async function list() {
  const answer = await act(null, () => getJSON('/api/sessions'), true);
  if (!answer) return;
  const sessions = Array.isArray(answer) ? answer : answer.sessions;
  const names = sessions.map((s) => (typeof s === 'string' ? s : s.name));
  clear(byId('ss-list'), names.length ? names.map((n) => el('option', { value: n }, n)) : [el('option', { value: '' }, 'no saved sessions')]);
  byId('ss-open').disabled = !names.length;
}

export async function open(button) {
  const name = byId('ss-list').value;
  const session = await act(button, () => getJSON('/api/sessions/' + encodeURIComponent(name)));
  if (!session) return;
  const w = session.work;
  const [current, ...others] = w.prompts;
  if (current) {
    state.prompt = current.prompt || '';
    state.answer = current.answer || '';
    state.wrong = current.wrong || '';
  }
  state.prompts = [state.prompt, ...others.map((p) => p.prompt)].filter(Boolean);
  state.interventions = w.interventions;
  state.graphs = w.graphs;
  byId('ss-name').value = name;
  byId('ss-msg').textContent = `opened ${name}`;
  changed('session');
}
