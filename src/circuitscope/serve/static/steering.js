/* The steering view: build a vector (ActAdd from a positive and a negative prompt at a layer, or a saved
 * vector file from the server's folders), then generate from the prompt with and without it, side by side,
 * streaming token by token. */

import { act, postJSON } from './api.js';
import { byId, clear, el, fmt } from './dom.js';
import { generateInto } from './generate.js';
import { state } from './state.js';

let vector = null;

export function setup() {
  const { n_layers: nLayers, files, limits } = state.info;
  clear(byId('st-layer'), [...Array(nLayers).keys()].map((l) => el('option', { value: l }, `L${l}`)));
  byId('st-layer').value = String(Math.floor(nLayers / 2));
  clear(byId('st-file'), files.vectors.length ? files.vectors.map((f) => el('option', { value: f }, f)) : [el('option', { value: '' }, 'no vector files in the folders')]);
  byId('st-max').max = String(limits.max_new_tokens);
  byId('st-max').value = String(Math.min(16, limits.max_new_tokens));
  const sync = () => {
    const fromFile = byId('st-kind').value === 'file';
    byId('st-actadd').hidden = fromFile;
    byId('st-fromfile').hidden = !fromFile;
  };
  byId('st-kind').addEventListener('change', sync);
  sync();
}

export async function buildVector(button) {
  const body =
    byId('st-kind').value === 'file'
      ? { kind: 'file', path: byId('st-file').value }
      : { kind: 'actadd', positive: byId('st-pos').value, negative: byId('st-neg').value, layer: Number(byId('st-layer').value) };
  const made = await act(button, () => postJSON('/api/steer/vector', body));
  if (!made) return;
  vector = made;
  const out = byId('st-vector');
  out.dataset.vector = made.vector;
  out.textContent = `vector ${made.vector}: layer ${made.layer}, norm ${fmt(made.norm)}`;
  byId('st-generate').disabled = false;
}

export function generate(button) {
  const prompt = byId('st-prompt').value || state.prompt;
  const body = { prompt, vector: vector.vector, coefficient: Number(byId('st-coef').value), max_new_tokens: Number(byId('st-max').value) };
  return generateInto(byId('st-out'), body, button);
}
