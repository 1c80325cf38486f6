/* The intervene view: click a head or an MLP (layer rows; heads, then the MLP, in columns) to zero-ablate,
 * mean-ablate or patch it from a second prompt; the predictions and the logit difference are recomputed
 * against the clean run, and the interventions are listed, each removable. The grid is coloured by the
 * prompt view's direct logit attribution when there is one, to show where to look. */

import { act, postJSON } from './api.js';
import { byId, clear, diverging, el, fmt, legend, maxAbs, signed } from './dom.js';
import { heatmap } from './heatmap.js';
import { predictionsTable } from './predictions.js';
import { promptView } from './prompt.js';
import { changed, promptBody, state } from './state.js';

const MARK = { zero: 'Z', mean: 'M', patch: 'P' };
const VERB = { zero: 'zero-ablate', mean: 'mean-ablate', patch: 'patch' };

export const interveneView = { last: null };

function label(spec) {
  return (spec.component === 'head' ? `L${spec.layer}H${spec.head}` : `L${spec.layer} MLP`) + ' ' + spec.kind;
}

function same(a, b) {
  return a.component === b.component && a.layer === b.layer && a.head === b.head;
}

function pick(layer, col) {
  const nHeads = state.info.n_heads;
  const kind = byId('iv-kind').value;
  const spec = {
    kind,
    component: col < nHeads ? 'head' : 'mlp',
    layer,
    head: col < nHeads ? col : null,
    source: kind === 'patch' ? byId('iv-source').value : null,
  };
  state.interventions = state.interventions.filter((s) => !same(s, spec)).concat([spec]);
  changed('interventions');
  return update();
}

export function remove(index) {
  state.interventions = state.interventions.filter((_, i) => i !== index);
  changed('interventions');
  return update();
}

export function draw() {
  drawGrid();
  drawList();
}

export async function update(button) {
  draw();
  if (!state.interventions.length) {
    drawResult(interveneView.last && { ...interveneView.last, predictions: interveneView.last.clean_predictions, logit_diff: interveneView.last.clean_logit_diff }, true);
    return;
  }
  const body = { ...promptBody(), interventions: state.interventions };
  const view = await act(button, () => postJSON('/api/intervene', body));
  if (!view) return;
  interveneView.last = view;
  drawResult(view, false);
}

function drawGrid() {
  const { n_layers: nLayers, n_heads: nHeads } = state.info;
  const d = promptView.last && promptView.last.dla;
  const value = (r, c) => (!d ? 0 : c < nHeads ? d.heads[r][c] : d.mlps[r]);
  const max = d ? maxAbs([d.heads, d.mlps]) : 0;
  const marked = (r, c) => state.interventions.find((s) => same(s, { layer: r, component: c < nHeads ? 'head' : 'mlp', head: c < nHeads ? c : null }));
  const cols = [...Array(nHeads).keys()].map((h) => `H${h}`).concat(['MLP']);
  clear(
    byId('iv-grid'),
    d ? legend('diverging', `\u2212${fmt(max)}`, `+${fmt(max)}`, 'direct logit attribution') : null,
    heatmap({
      id: 'iv-components',
      rows: [...Array(nLayers).keys()].map((l) => `L${l}`),
      cols,
      color: (r, c) => diverging(value(r, c), max),
      text: (r, c) => (marked(r, c) ? MARK[marked(r, c).kind] : ''),
      tip: (r, c) => `L${r} ${cols[c]}: click or Enter to ${VERB[byId('iv-kind').value]} it` + (d ? ` (DLA ${signed(value(r, c))})` : ''),
      onPick: (r, c) => pick(r, c),
      xTitle: 'head, then the MLP',
      yTitle: 'layer',
      cellClass: 'cell pickable',
      caption: d ? 'Coloured by the prompt view\u2019s direct logit attribution (blue raises the answer).' : 'Run the prompt view with an answer pair to colour the components by their attribution.',
    }),
  );
}

function drawList() {
  const items = state.interventions.map((s, i) =>
    el('li', { dataset: { label: label(s) } }, el('span', {}, label(s) + (s.source ? ` from \u201c${s.source}\u201d` : '')), ' ',
      el('button', { type: 'button', class: 'remove', 'aria-label': `Remove ${label(s)}`, onclick: () => remove(i) }, 'Remove')),
  );
  clear(byId('iv-list'), items.length ? items : [el('li', { class: 'caption' }, 'None: click a component in the grid.')]);
}

function drawResult(view, clean) {
  const out = byId('iv-result');
  if (!view) {
    clear(out);
    return;
  }
  const diff = view.logit_diff;
  const cleanDiff = view.clean_logit_diff;
  out.dataset.count = clean ? '0' : String(view.interventions.length);
  clear(
    out,
    diff === null || diff === undefined
      ? el('p', { class: 'caption' }, 'Give an answer pair in the prompt bar for the logit difference.')
      : el(
          'p',
          { class: 'kpi-line' },
          'logit difference ',
          el('strong', { id: 'logit-diff', dataset: { value: diff } }, fmt(diff)),
          clean ? ' (clean: no interventions)' : ` (clean ${fmt(cleanDiff)}, change ${signed(diff - cleanDiff)})`,
        ),
    el(
      'div',
      { class: 'side-by-side' },
      predictionsTable(view.clean_predictions, 'Clean run', 'iv-clean'),
      predictionsTable(view.predictions, clean ? 'No interventions' : 'With the interventions', 'iv-predictions'),
    ),
  );
}
